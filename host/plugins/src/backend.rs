//! The one door from plugins to the reward model.
//!
//! The plugin host never links the engine: the daemon implements [`RewardBackend`] over its
//! engine handle, the CLI over a loaded model or [`NoModel`], and tests over fakes. Calls arrive
//! on whatever thread runs the plugin, so implementations block until the engine answers.

use crate::types::Message;

/// Scores responses and counts tokens on behalf of plugins.
pub trait RewardBackend: Send + Sync {
    /// One score per response (higher is better), as the reply to `conversation`.
    ///
    /// # Errors
    /// A message the plugin receives verbatim (input too long, engine failure, no model).
    fn score(&self, conversation: &[Message], responses: &[String]) -> Result<Vec<f32>, String>;

    /// Model tokens in `text`; 0 when there is no tokenizer.
    fn count_tokens(&self, text: &str) -> u32;

    /// Short label for logs and reports, e.g. the model directory.
    fn describe(&self) -> String;
}

/// Backend for hosts without a reward model: scoring fails with a clear message.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoModel;

impl RewardBackend for NoModel {
    fn score(&self, _conversation: &[Message], responses: &[String]) -> Result<Vec<f32>, String> {
        Err(format!(
            "no reward model is loaded, so {} response(s) cannot be scored (start the host with a model)",
            responses.len()
        ))
    }

    fn count_tokens(&self, _text: &str) -> u32 {
        0
    }

    fn describe(&self) -> String {
        "none".to_owned()
    }
}
