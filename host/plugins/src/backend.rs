//! The one door from plugins to the reward model.
//!
//! The plugin host never links the engine: the daemon implements [`RewardBackend`] over its
//! engine handle, the CLI over a loaded model or [`NoModel`], and tests over fakes. Calls arrive
//! on whatever thread runs the plugin, so implementations block until the engine answers.

use crate::types::Message;

/// What kind of scoring failure happened, so hosts can answer their callers precisely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewardErrorKind {
    /// The input is longer than the model's context or the configured limit.
    TooLong,
    /// The input cannot be rendered or tokenized.
    BadInput,
    /// The engine is at capacity (queue full): retry later.
    Overloaded,
    /// No reward model is available.
    Unavailable,
    /// The engine failed.
    Failed,
    /// The request that the call serves was abandoned (its client went away).
    Cancelled,
}

/// A scoring failure. Plugins receive only `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RewardError {
    /// The kind.
    pub kind: RewardErrorKind,
    /// A message naming the cause.
    pub message: String,
}

impl RewardError {
    /// Builds an error.
    pub fn new(kind: RewardErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

/// Scores responses and counts tokens on behalf of plugins.
pub trait RewardBackend: Send + Sync {
    /// One score per response (higher is better), as the reply to `conversation`.
    ///
    /// # Errors
    /// A typed failure; a plugin receives its message verbatim (input too long, engine
    /// failure, no model).
    fn score(&self, conversation: &[Message], responses: &[String]) -> Result<Vec<f32>, RewardError>;

    /// Model tokens in `text`; 0 when there is no tokenizer.
    fn count_tokens(&self, text: &str) -> u32;

    /// Short label for logs and reports, e.g. the model directory.
    fn describe(&self) -> String;

    /// True once the request this backend serves has been abandoned: the host then stops the
    /// guest at its next host call or epoch tick instead of letting it run to its limits.
    fn cancelled(&self) -> bool {
        false
    }
}

/// Backend for hosts without a reward model: scoring fails with a clear message.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoModel;

impl RewardBackend for NoModel {
    fn score(&self, _conversation: &[Message], responses: &[String]) -> Result<Vec<f32>, RewardError> {
        Err(RewardError::new(
            RewardErrorKind::Unavailable,
            format!(
                "no reward model is loaded, so {} response(s) cannot be scored (start the host with a model)",
                responses.len()
            ),
        ))
    }

    fn count_tokens(&self, _text: &str) -> u32 {
        0
    }

    fn describe(&self) -> String {
        "none".to_owned()
    }
}
