//! arbiter-engine: Llama-3.x reward-model scoring on candle, reproducing the reference
//! transformers code (Llama-3.3-Nemotron-70B-Select model card) exactly.
//!
//! A [`RewardModel`] scores N candidate responses to one conversation. The Llama
//! implementation ([`LlamaRewardModel`]) renders `messages + [assistant: candidate]` with the
//! checkpoint's chat template (`add_generation_prompt = false`), tokenizes without adding
//! special tokens, runs the decoder, and reads the raw logit of the reward token (id 0 by
//! default) at the last position — or the `score` head of a sequence-classification
//! checkpoint. The token prefix shared by all candidates is computed once; candidates are
//! packed into batches; attention is computed block-wise with an online softmax, so memory
//! stays linear in sequence length.
//!
//! Synchronous by design: no async runtime, no wasmtime. Callers run it on their own thread.

mod api;
pub mod bench;
mod compute;
mod config;
pub mod demo;
mod engine;
mod error;
mod fake;
mod gpus;
mod model;
mod plan;
mod prefix_cache;
mod prompt;
mod prompt_batch;
mod schedule;
mod template;
mod text;
mod weights;

pub use api::{EngineOptions, ModelLimits, Prepared, RewardModel, ScoreStats};
pub use compute::{BackendChoice, Compute, ComputeInfo, DtypeChoice, Linear};
pub use config::{Head, Llama3Scaling, ModelConfig};
pub use engine::LlamaRewardModel;
pub use error::{EngineError, Result};
pub use fake::FakeRewardModel;
pub use gpus::plan_gpus;
pub use plan::{Budget, DevicePlan, DoesNotFit, Plan, PlanRequest, plan};
pub use prefix_cache::PrefixCacheStats;
pub use prompt::Prompter;
pub use template::{ChatTemplate, Message, is_python_space, python_strip};
pub use text::{TextEncoder, neutralize};
pub use weights::Checkpoint;
