//! Host-side mirrors of the WIT `arbiter:policy/types` records.
//!
//! Generated bindings never leave `bindings.rs`: everything the daemon and CLI see is one of
//! these plain types. They carry no wasmtime types, so callers need not depend on wasmtime.

/// One conversation turn (`types.message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Speaker role, e.g. `user`.
    pub role: String,
    /// Turn text.
    pub content: String,
}

/// One candidate response (`types.candidate`).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Position in the request; the host sets it, so `candidates[i].index == i`.
    pub index: u32,
    /// Response text.
    pub text: String,
    /// Length in model tokens (0 without a tokenizer).
    pub tokens: u32,
    /// Reward score when already known.
    pub score: Option<f32>,
    /// Named features from rule plugins.
    pub features: Vec<(String, f32)>,
}

/// Input of `selector.select` (`types.request`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// Conversation without the candidate turn.
    pub conversation: Vec<Message>,
    /// Candidates in request order.
    pub candidates: Vec<Candidate>,
    /// Policy parameters as strings.
    pub params: Vec<(String, String)>,
    /// Seed for all randomness.
    pub seed: u64,
}

/// A policy's decision (`types.selection`), already validated against its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Chosen candidate index, or `None` when the policy abstains.
    pub chosen: Option<u32>,
    /// Candidate indices, best first; each `< N`, no duplicates.
    pub ranking: Vec<u32>,
    /// Explanation.
    pub reason: String,
}

/// Why a policy refused to decide (`types.policy-error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A parameter is missing or malformed.
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The request has no candidates.
    #[error("no candidates")]
    NoCandidates,
    /// Any other failure.
    #[error("failed: {0}")]
    Failed(String),
}

/// Static description of a policy (`types.policy-info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    /// Policy name.
    pub name: String,
    /// Policy version.
    pub version: String,
    /// Whether the host should score every candidate before `select`.
    pub wants_prescored: bool,
    /// Parameter documentation.
    pub params_doc: String,
}

/// Severity of a plugin log line (`log.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Debug detail.
    Debug,
    /// Informational.
    Info,
    /// Warning.
    Warn,
    /// Error.
    Error,
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        })
    }
}

/// One captured log line: from the `log` import, or guest stdout/stderr (as `Info`/`Warn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Severity.
    pub level: LogLevel,
    /// Text (guest stdout/stderr arrive split at newlines).
    pub message: String,
}
