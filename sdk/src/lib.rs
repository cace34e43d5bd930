//! arbiter-sdk: write arbiter selection policies and scoring rules in Rust.
//!
//! Implement [`Policy`] (or [`Rule`]) on a unit struct and export it with
//! [`export_policy!`] (or [`export_rule!`]); build the crate as a `cdylib` for
//! `wasm32-wasip2` with the `policy` (or `rule`) feature. The helpers cover what most policies
//! need: deterministic ranking with NaN last ([`rank_by_score`], [`best`]), typed parameters
//! with errors naming the parameter ([`Params`]), a seeded RNG ([`Rng`]), logging ([`log`])
//! and the host's reward model ([`reward`]). The generated bindings are hidden in
//! [`bindings`] and never appear in a plugin's signatures.

extern crate self as arbiter_sdk;

#[doc(hidden)]
pub mod bindings;
#[cfg(all(target_arch = "wasm32", feature = "bump-allocator"))]
mod bump;
mod export;
pub mod log;
mod params;
mod rank;
pub mod reward;
mod rng;
mod types;

#[doc(hidden)]
pub use export::__private;
pub use export::{Policy, Rule};
pub use params::Params;
pub use rank::{best, compare_scores, rank_by_score};
pub use rng::Rng;
pub use types::{Candidate, Message, PolicyError, PolicyInfo, Request, Selection};

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

#[cfg(all(target_arch = "wasm32", feature = "bump-allocator"))]
#[global_allocator]
static ALLOCATOR: bump::Bump = bump::Bump::new();

#[cfg(all(target_arch = "wasm32", feature = "policy", feature = "rule"))]
compile_error!("arbiter-sdk: enable exactly one of the `policy` and `rule` features for a wasm plugin");

/// Everything a plugin usually imports.
pub mod prelude {
    pub use crate::{
        Candidate, Message, Params, Policy, PolicyError, PolicyInfo, Request, Rng, Rule, Selection, best,
        compare_scores, export_policy, export_rule, log, rank_by_score, reward,
    };
}
