//! Typed errors of the engine. Every error names the file (or input) and what is wrong with it,
//! so a user pointing `--model` at a directory learns exactly which piece to fix.

use std::path::PathBuf;

/// An engine error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A file could not be read.
    // The OS error is part of the message and deliberately not a `source`: printed with its
    // chain (`{:#}`), it would say the same thing twice.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// A file is present but malformed or inconsistent.
    #[error("{path}: {message}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The checkpoint asks for something this engine does not implement.
    #[error("{path}: unsupported: {message}")]
    Unsupported {
        /// The file that asks for it.
        path: PathBuf,
        /// What is unsupported.
        message: String,
    },
    /// The chat template failed to render a conversation.
    #[error("chat template: {0}")]
    Template(String),
    /// Tokenization failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// An input is longer than the model's context or the configured limit.
    #[error("input of {tokens} tokens exceeds the {limit_name} of {limit} tokens")]
    TooLong {
        /// Tokens in the input.
        tokens: usize,
        /// The limit.
        limit: usize,
        /// Which limit: "model context (max_position_embeddings)" or "configured limit".
        limit_name: &'static str,
    },
    /// A request the engine cannot serve as given (no responses, empty conversation).
    #[error("invalid input: {0}")]
    Input(String),
    /// The model cannot fit the memory available (the planner's arithmetic).
    #[error("{0}; a bf16 checkpoint with --dtype bf16 needs half the memory of f32")]
    DoesNotFit(#[from] crate::plan::DoesNotFit),
    /// The tensor library failed.
    #[error("compute: {0}")]
    Compute(String),
}

impl From<candle_core::Error> for EngineError {
    fn from(e: candle_core::Error) -> Self {
        EngineError::Compute(e.to_string())
    }
}

/// Shorthand for a malformed-file error.
pub(crate) fn bad(path: impl Into<PathBuf>, message: impl Into<String>) -> EngineError {
    EngineError::BadFile { path: path.into(), message: message.into() }
}

/// Engine result.
pub type Result<T> = std::result::Result<T, EngineError>;
