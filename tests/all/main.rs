//! The workspace's integration tests: one binary (see `host/daemon/Cargo.toml`).

mod bundled;
mod cache;
mod cli;
mod daemon;
mod engine;
mod engine_bf16;
mod examples;
mod hardening;
mod hostile;
mod prefix_cache;
mod rust_guest;
mod score_batch;
mod support;
mod tokenize;
