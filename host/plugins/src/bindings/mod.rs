//! The WIT contracts the host serves, one module per contract version (`v0_1` is
//! `arbiter:policy@0.1.0`, from `wit/`).
//!
//! Call sites name only what this module re-exports, so a 0.2 contract can sit beside 0.1
//! (its own module, its own conversions into [`crate::types`]) without touching them; which
//! version a component targets is decided where it is linked (`host.rs`).

pub(crate) mod v0_1;

pub(crate) use v0_1::Policy;
pub(crate) use v0_1::{PolicyPre, RulePre, candidate_to_wit, wit, wit_log, wit_reward};
