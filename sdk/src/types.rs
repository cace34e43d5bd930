//! The SDK's own data types: what a policy or rule sees and returns.
//!
//! They mirror the WIT records of `arbiter:policy/types` but belong to the SDK, so generated
//! code never appears in a plugin's signatures.

use crate::params::Params;

/// One conversation turn.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Speaker role, e.g. `user`.
    pub role: String,
    /// Turn text.
    pub content: String,
}

/// One candidate response.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Candidate {
    /// Position in the request (`request.candidates[i].index == i`).
    pub index: u32,
    /// Response text.
    pub text: String,
    /// Length in model tokens (0 when the host has no tokenizer).
    pub tokens: u32,
    /// Reward score, when the host scored it before the call.
    pub score: Option<f32>,
    /// Named features from rule plugins.
    pub features: Vec<(String, f32)>,
}

impl Candidate {
    /// Value of the named feature, if a rule produced it.
    pub fn feature(&self, name: &str) -> Option<f32> {
        self.features.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }

    /// The score when present and not NaN.
    pub fn usable_score(&self) -> Option<f32> {
        self.score.filter(|s| !s.is_nan())
    }
}

/// The input of a policy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// Conversation without the candidate turn.
    pub conversation: Vec<Message>,
    /// Candidates in request order.
    pub candidates: Vec<Candidate>,
    /// Caller parameters.
    pub params: Params,
    /// Seed for all randomness; see [`crate::Rng::from_request`].
    pub seed: u64,
}

/// A policy's decision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    /// Chosen index, or `None` to abstain.
    pub chosen: Option<u32>,
    /// Indices best first; each `< N`, no duplicates.
    pub ranking: Vec<u32>,
    /// Explanation (at most 4 KiB by default).
    pub reason: String,
}

/// Why a policy cannot decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// A parameter is missing or malformed; name it in the message.
    InvalidParams(String),
    /// There are no candidates.
    NoCandidates,
    /// Anything else.
    Failed(String),
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyError::InvalidParams(m) => write!(f, "invalid params: {m}"),
            PolicyError::NoCandidates => f.write_str("no candidates"),
            PolicyError::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

impl std::error::Error for PolicyError {}

/// Static description of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    /// Short unique name (`[A-Za-z0-9._+-]`, at most 64 characters).
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// True when the host should score all candidates before calling `select`.
    pub wants_prescored: bool,
    /// Parameter documentation, one per line.
    pub params_doc: String,
}

impl PolicyInfo {
    /// A prescored policy without parameters.
    pub fn new(name: &str, version: &str) -> Self {
        Self { name: name.into(), version: version.into(), wants_prescored: true, params_doc: String::new() }
    }

    /// Sets the parameter documentation.
    pub fn params_doc(mut self, doc: &str) -> Self {
        self.params_doc = doc.into();
        self
    }

    /// Marks the policy as lazy: the host passes unscored candidates and the policy scores
    /// them itself through [`crate::reward::score`].
    pub fn lazy(mut self) -> Self {
        self.wants_prescored = false;
        self
    }
}
