//! Tokenization of rendered conversations, and the optional neutralizing of special-token
//! text inside user content.
//!
//! The reference tokenizes the rendered text with no special tokens added (the template
//! already starts with `<|begin_of_text|>`), and text such as `<|eot_id|>` inside a message
//! is tokenized as the special token. That is the default here too; [`neutralize`] is the
//! opt-in alternative.

use std::path::Path;

use crate::error::{EngineError, Result, bad};

/// A Hugging Face `tokenizer.json` tokenizer.
pub struct TextEncoder {
    inner: tokenizers::Tokenizer,
    /// The most input bytes one token can stand for, where the tokenizer provably never drops
    /// input bytes (no normalizer; byte-level or regex-split pre-tokenization): then a text of
    /// `b` bytes has at least `b / max_token_bytes` tokens, without tokenizing it.
    max_token_bytes: Option<usize>,
    /// Special added tokens that split text exactly (matched as written: no strip, not
    /// normalized), so text before one of them tokenizes independently of text after it.
    /// Empty when any added token strips or is normalized.
    splitting_tokens: Vec<String>,
}

impl std::fmt::Debug for TextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEncoder")
            .field("vocab", &self.inner.get_vocab_size(true))
            .field("max_token_bytes", &self.max_token_bytes)
            .finish_non_exhaustive()
    }
}

impl TextEncoder {
    /// Loads `tokenizer.json`.
    ///
    /// # Errors
    /// A missing or malformed file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|error| EngineError::Io { path: path.into(), error })?;
        let inner =
            tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| bad(path, format!("not a tokenizer.json: {e}")))?;
        let json: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(path, format!("not a tokenizer.json: {e}")))?;
        Ok(Self { inner, max_token_bytes: max_token_bytes(&json), splitting_tokens: splitting_tokens(&json) })
    }

    /// A lower bound on the tokens of `text` from its length alone (`None`: no safe bound for
    /// this tokenizer).
    pub fn min_tokens(&self, text: &str) -> Option<usize> {
        self.max_token_bytes.map(|m| text.len().div_ceil(m.max(1)))
    }

    /// Special tokens at which text splits exactly (see the field).
    pub fn splitting_tokens(&self) -> &[String] {
        &self.splitting_tokens
    }

    /// Token ids of `text`, adding no special tokens.
    ///
    /// # Errors
    /// The tokenizer failed (malformed input for its normalizer).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.inner
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| EngineError::Tokenizer(e.to_string()))
    }

    /// Id of a token string, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// Pre-tokenizers that keep every input byte in some token.
fn keeps_every_byte(pre: &serde_json::Value) -> bool {
    match pre.get("type").and_then(|t| t.as_str()) {
        Some("ByteLevel") => true,
        Some("Split") => pre.get("behavior").and_then(|b| b.as_str()) == Some("Isolated"),
        Some("Sequence") => {
            pre.get("pretokenizers").and_then(|l| l.as_array()).is_some_and(|l| l.iter().all(keeps_every_byte))
        }
        _ => false,
    }
}

/// The most bytes of input one token stands for, where that bounds tokens from below: no
/// normalizer (it could delete input), a pre-tokenizer that keeps every byte, and a
/// byte-level decoder (a vocabulary string's characters are then exactly its bytes).
fn max_token_bytes(json: &serde_json::Value) -> Option<usize> {
    let byte_level = json.pointer("/decoder/type").and_then(|t| t.as_str()) == Some("ByteLevel");
    if !json.get("normalizer").is_some_and(serde_json::Value::is_null)
        || !json.get("pre_tokenizer").is_some_and(keeps_every_byte)
        || !byte_level
    {
        return None;
    }
    let vocab = json.pointer("/model/vocab").and_then(|v| v.as_object())?;
    let added = json.get("added_tokens").and_then(|a| a.as_array());
    let longest_added = added
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("content").and_then(|c| c.as_str()))
        .map(str::len)
        .max()
        .unwrap_or(0);
    vocab.keys().map(|k| k.chars().count()).max().map(|m| m.max(longest_added))
}

/// The special added tokens, if every added token is matched exactly as written.
fn splitting_tokens(json: &serde_json::Value) -> Vec<String> {
    let Some(added) = json.get("added_tokens").and_then(|a| a.as_array()) else { return Vec::new() };
    let flag = |t: &serde_json::Value, k: &str| t.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    if added.iter().any(|t| flag(t, "lstrip") || flag(t, "rstrip") || flag(t, "normalized")) {
        return Vec::new();
    }
    added
        .iter()
        .filter(|t| flag(t, "special"))
        .filter_map(|t| t.get("content").and_then(|c| c.as_str()).map(str::to_owned))
        .collect()
}

/// Breaks `<|…|>` sequences in user-supplied text with U+2060 WORD JOINER after the `<`, so
/// they tokenize as ordinary text instead of as special tokens. Off by default: the reference
/// model code does not do this, and scores change when it is on.
pub fn neutralize(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains("<|") { text.replace("<|", "<\u{2060}|").into() } else { text.into() }
}
