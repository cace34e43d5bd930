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
}

impl std::fmt::Debug for TextEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEncoder").field("vocab", &self.inner.get_vocab_size(true)).finish()
    }
}

impl TextEncoder {
    /// Loads `tokenizer.json`.
    ///
    /// # Errors
    /// A missing or malformed file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| EngineError::Io { path: path.into(), source })?;
        let inner =
            tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| bad(path, format!("not a tokenizer.json: {e}")))?;
        Ok(Self { inner })
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

/// Breaks `<|…|>` sequences in user-supplied text with U+2060 WORD JOINER after the `<`, so
/// they tokenize as ordinary text instead of as special tokens. Off by default: the reference
/// model code does not do this, and scores change when it is on.
pub fn neutralize(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains("<|") { text.replace("<|", "<\u{2060}|").into() } else { text.into() }
}
