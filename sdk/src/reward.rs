//! The host's reward model, for lazy policies (`PolicyInfo::lazy`).
//!
//! Every call counts against the plugin's per-call quota; going past it ends the call. On
//! native targets there is no host, so scoring reports an error.

use crate::types::Message;

/// Scores each response as the assistant's reply to `conversation`; one score per response.
///
/// # Errors
/// The host's message: no model loaded, input too long, engine failure.
pub fn score(conversation: &[Message], responses: &[String]) -> Result<Vec<f32>, String> {
    imp::score(conversation, responses)
}

/// Model tokens in `text` (0 when the host has no tokenizer).
pub fn count_tokens(text: &str) -> u32 {
    imp::count_tokens(text)
}

#[cfg(all(target_arch = "wasm32", feature = "policy"))]
mod imp {
    use crate::bindings::policy::arbiter::policy::{reward, types};
    use crate::types::Message;

    pub(super) fn score(conversation: &[Message], responses: &[String]) -> Result<Vec<f32>, String> {
        let conv: Vec<types::Message> =
            conversation.iter().map(|m| types::Message { role: m.role.clone(), content: m.content.clone() }).collect();
        reward::score(&conv, responses)
    }

    pub(super) fn count_tokens(text: &str) -> u32 {
        reward::count_tokens(text)
    }
}

#[cfg(not(all(target_arch = "wasm32", feature = "policy")))]
mod imp {
    use crate::types::Message;

    pub(super) fn score(_conversation: &[Message], responses: &[String]) -> Result<Vec<f32>, String> {
        Err(format!("no arbiter host: cannot score {} response(s) outside a policy plugin", responses.len()))
    }

    pub(super) fn count_tokens(_text: &str) -> u32 {
        0
    }
}
