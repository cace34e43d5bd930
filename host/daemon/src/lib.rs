//! arbiter: choose the best of N candidate LLM responses with a reward model and sandboxed
//! wasm policies.
//!
//! This library backs the `arbiter` binary: the bundled plugins ([`bundled`]), the JSON
//! request/response shapes ([`input`]) and the selection pipeline ([`select`]) that the CLI
//! and the daemon share. The binary's `main.rs` only parses arguments and prints.

pub mod bundled;
pub mod input;
pub mod reward;
pub mod select;
pub mod serve;
