//! `max-length` rule: feature = −(tokens over `max_tokens`), 0 when within the limit.
//! Param (addressed as `max-length.max_tokens` in a request): `max_tokens`, required.
//! Tokens are the host's count; a host without a tokenizer reports 0 for every text, and
//! then whitespace-separated words are counted instead, so the rule still means something.

use arbiter_sdk::prelude::*;

/// The max-length rule.
pub struct MaxLength;

impl Rule for MaxLength {
    const NAME: &'static str = "max-length";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn score(_conversation: &[Message], candidate: &Candidate, params: &Params) -> Result<f32, String> {
        let max = params.integer("max_tokens").map_err(|e| e.to_string())?.ok_or_else(|| {
            PolicyError::InvalidParams("parameter `max-length.max_tokens` is required".into()).to_string()
        })?;
        let tokens = match candidate.tokens {
            0 => candidate.text.split_whitespace().count() as u64,
            n => u64::from(n),
        };
        let over = tokens.saturating_sub(max);
        // `-(0 as f32)` would be -0.0; within the limit the feature is a plain 0.
        Ok(if over == 0 { 0.0 } else { -(over as f32) })
    }
}

export_rule!(MaxLength);
