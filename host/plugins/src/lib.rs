//! arbiter-plugins: the sandboxed wasmtime host for arbiter policy and rule plugins.
//!
//! A [`PluginHost`] owns one wasmtime `Engine` (with its epoch ticker) and loads plugins into
//! immutable [`Plugin`] values. Each call runs in a fresh `Store` instantiated from a
//! pre-instantiated component, with fuel, a guest-time deadline, a memory cap, and caps on
//! input, output, logs and reward work ([`Limits`]). Plugins get no ambient authority: WASI
//! imports are linked deny-all (see `wasi.rs`), and any other import outside `arbiter:policy`
//! refuses the plugin at load. The reward model is reached only through [`RewardBackend`].
//!
//! This crate never depends on the engine crate or on an async runtime: calls are
//! synchronous and must run on a blocking thread when the caller is async.

mod backend;
mod bindings;
mod cache;
mod call;
mod error;
mod host;
mod intake;
mod limits;
mod plugin;
mod state;
mod types;
mod validate;
mod wasi;
mod worker;

pub use backend::{NoModel, RewardBackend, RewardError, RewardErrorKind};
pub use cache::default_cache_dir;
pub use call::CallStats;
pub use error::{ErrorKind, PluginError, PluginId};
pub use host::{HostConfig, HostError, PluginHost};
pub use intake::IntakeLimits;
pub use limits::Limits;
pub use plugin::{LoadReport, Plugin, PluginKind};
pub use types::{Candidate, LogLevel, LogLine, Message, PolicyError, PolicyInfo, Request, Selection};
pub use worker::{CompileWorker, worker_main};
