//! The bridge from the plugin host's `RewardBackend` to the engine's `RewardModel`.
//!
//! Plugins (and the selection pipeline) see the engine only through this adapter: the plugin
//! crate never depends on the engine crate, and the engine never sees wasm types.

use std::sync::Arc;

use arbiter_engine::EngineError;
use arbiter_engine::RewardModel;
use arbiter_plugins::{Message, RewardBackend, RewardError, RewardErrorKind};

/// The kind of an engine error, as the plugin host reports it.
pub fn reward_error(e: &EngineError) -> RewardError {
    let kind = match e {
        EngineError::TooLong { .. } => RewardErrorKind::TooLong,
        EngineError::Template(_) | EngineError::Tokenizer(_) | EngineError::Input(_) => RewardErrorKind::BadInput,
        _ => RewardErrorKind::Failed,
    };
    RewardError::new(kind, e.to_string())
}

/// A `RewardBackend` backed by a loaded reward model.
#[derive(Clone)]
pub struct EngineBackend {
    model: Arc<dyn RewardModel>,
}

impl EngineBackend {
    /// Wraps a model.
    pub fn new(model: Arc<dyn RewardModel>) -> Self {
        Self { model }
    }
}

/// The plugin host's messages as the engine's.
pub fn to_engine(conversation: &[Message]) -> Vec<arbiter_engine::Message> {
    conversation.iter().map(|m| arbiter_engine::Message { role: m.role.clone(), content: m.content.clone() }).collect()
}

impl RewardBackend for EngineBackend {
    fn score(&self, conversation: &[Message], responses: &[String]) -> Result<Vec<f32>, RewardError> {
        self.model.score(&to_engine(conversation), responses).map_err(|e| reward_error(&e))
    }

    fn count_tokens(&self, text: &str) -> u32 {
        // A text the tokenizer rejects has no meaningful length; 0 is what a host without a
        // tokenizer reports, and rules treat it that way.
        self.model.count_tokens(text).unwrap_or(0)
    }

    fn describe(&self) -> String {
        self.model.describe()
    }
}
