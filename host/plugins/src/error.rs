//! Typed errors of the plugin host.
//!
//! Every error names the plugin (name, version, sha256) and one [`ErrorKind`]. The kind is
//! what the daemon maps to an HTTP status and a metric label ([`ErrorKind::label`]), so it must
//! say which limit or rule the plugin broke, not merely that "something failed".

use std::fmt;

use crate::backend::RewardError;
use crate::types::PolicyError;

/// Identity of a plugin binary. Before `info()` has answered, `name` is the file stem and
/// `version` is `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginId {
    /// Name reported by the plugin (or the file stem during loading).
    pub name: String,
    /// Version reported by the plugin.
    pub version: String,
    /// Lowercase hex sha256 of the wasm bytes.
    pub sha256: String,
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = self.sha256.get(..12).unwrap_or(&self.sha256);
        write!(f, "`{}` {} (sha256 {short})", self.name, self.version)
    }
}

/// What went wrong, and which limit was hit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ErrorKind {
    /// The bytes are not a loadable plugin (size, parse, validation, wrong world).
    #[error("cannot load: {0}")]
    Load(String),
    /// The plugin's imports cannot be satisfied (unknown or forbidden interface).
    #[error("cannot link: {0}")]
    Link(String),
    /// Fuel ran out.
    #[error("ran out of fuel (limit {limit} units)")]
    OutOfFuel {
        /// The fuel limit.
        limit: u64,
    },
    /// The guest ran past its wall-clock limit.
    #[error("ran past its time limit of {limit_ms} ms")]
    Timeout {
        /// The limit in milliseconds.
        limit_ms: u64,
    },
    /// The guest tried to grow memory past its cap.
    #[error("tried to use more than its memory limit of {limit_bytes} bytes")]
    Memory {
        /// The cap in bytes.
        limit_bytes: usize,
    },
    /// The guest overflowed the wasm stack.
    #[error("overflowed its wasm stack (limit {limit_bytes} bytes)")]
    StackOverflow {
        /// The engine-wide stack cap.
        limit_bytes: usize,
    },
    /// The guest trapped or panicked (`unreachable`, out-of-bounds access, Rust panic).
    #[error("trapped: {0}")]
    Trap(String),
    /// The guest called an import that the sandbox denies (WASI clock, random, sockets, ...).
    #[error("called `{0}`, which the sandbox denies")]
    Denied(String),
    /// The guest sent more work through `reward` than its quota allows.
    #[error("exceeded its reward quota: {0}")]
    RewardQuota(String),
    /// The guest wrote more log bytes than allowed.
    #[error("wrote more than its log limit of {limit_bytes} bytes")]
    LogLimit {
        /// The cap in bytes.
        limit_bytes: usize,
    },
    /// Every instance slot of the host is in use: too many concurrent plugin calls.
    #[error("cannot start: the host is at its limit of concurrent plugin instances ({0})")]
    Busy(String),
    /// The request is larger than the plugin's input caps.
    #[error("input too large: {0}")]
    InputTooLarge(String),
    /// The policy answered with its own error (also a rule's `invalid params: ` error: the
    /// caller's parameters are wrong).
    #[error("{0}")]
    Policy(PolicyError),
    /// A rule answered with an error for a candidate.
    #[error("rule failed on candidate {index}: {message}")]
    Rule {
        /// Candidate index.
        index: u32,
        /// The rule's message.
        message: String,
    },
    /// The guest returned something that breaks the output contract.
    #[error("returned invalid output: {0}")]
    InvalidOutput(String),
    /// The guest gave up (policy error or trap) after a `reward` call failed: the host's
    /// typed cause, so callers see the same error as for a failure outside the plugin.
    #[error("a reward call failed: {0}")]
    Reward(RewardError),
    /// The request was abandoned while the guest ran (its client went away).
    #[error("stopped: the request was abandoned")]
    Cancelled,
    /// The guest called into the host more often than allowed.
    #[error("made more than {limit} host calls")]
    HostCalls {
        /// The limit.
        limit: u64,
    },
    /// The whole call, host time included, ran past its deadline.
    #[error("ran past its call deadline of {limit_ms} ms (host time included)")]
    Deadline {
        /// The deadline in milliseconds.
        limit_ms: u64,
    },
}

impl ErrorKind {
    /// Stable kebab-case label, for metrics and API error types.
    pub fn label(&self) -> &'static str {
        match self {
            ErrorKind::Load(_) => "load",
            ErrorKind::Link(_) => "link",
            ErrorKind::OutOfFuel { .. } => "out-of-fuel",
            ErrorKind::Timeout { .. } => "timeout",
            ErrorKind::Memory { .. } => "memory",
            ErrorKind::StackOverflow { .. } => "stack-overflow",
            ErrorKind::Trap(_) => "trap",
            ErrorKind::Denied(_) => "denied",
            ErrorKind::RewardQuota(_) => "reward-quota",
            ErrorKind::LogLimit { .. } => "log-limit",
            ErrorKind::InputTooLarge(_) => "input-too-large",
            ErrorKind::Busy(_) => "busy",
            ErrorKind::Policy(PolicyError::InvalidParams(_)) => "invalid-params",
            ErrorKind::Policy(PolicyError::NoCandidates) => "no-candidates",
            ErrorKind::Policy(PolicyError::Failed(_)) => "policy-failed",
            ErrorKind::Rule { .. } => "rule-failed",
            ErrorKind::InvalidOutput(_) => "invalid-output",
            ErrorKind::Reward(_) => "reward-failed",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::HostCalls { .. } => "host-calls",
            ErrorKind::Deadline { .. } => "deadline",
        }
    }

    /// True when the guest, not the caller or the host, is at fault: the plugin broke a limit
    /// or the output contract. Not plugin faults: bad params, no candidates, oversize input
    /// (the caller's), a full instance pool (the host's load), a failed reward call (the
    /// engine's or the caller's) and an abandoned request.
    pub fn is_plugin_fault(&self) -> bool {
        !matches!(
            self,
            ErrorKind::InputTooLarge(_)
                | ErrorKind::Busy(_)
                | ErrorKind::Reward(_)
                | ErrorKind::Cancelled
                | ErrorKind::Policy(PolicyError::InvalidParams(_) | PolicyError::NoCandidates)
        )
    }
}

/// Longest text a plugin's bytes may put into one error message.
pub(crate) const MAX_ERROR_TEXT: usize = 2048;

/// `text` cut to at most `max` bytes (on a character boundary), saying how long it was:
/// a plugin's bytes reach error messages, logs and HTTP bodies only through this.
pub(crate) fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} bytes)", &text[..cut], text.len())
}

impl ErrorKind {
    /// The same error with every plugin-supplied text clipped to [`MAX_ERROR_TEXT`].
    pub(crate) fn bounded(self) -> Self {
        let c = |s: String| clip(&s, MAX_ERROR_TEXT);
        match self {
            ErrorKind::Load(s) => ErrorKind::Load(c(s)),
            ErrorKind::Link(s) => ErrorKind::Link(c(s)),
            ErrorKind::Trap(s) => ErrorKind::Trap(c(s)),
            ErrorKind::Denied(s) => ErrorKind::Denied(c(s)),
            ErrorKind::RewardQuota(s) => ErrorKind::RewardQuota(c(s)),
            ErrorKind::Busy(s) => ErrorKind::Busy(c(s)),
            ErrorKind::InputTooLarge(s) => ErrorKind::InputTooLarge(c(s)),
            ErrorKind::Policy(PolicyError::InvalidParams(s)) => ErrorKind::Policy(PolicyError::InvalidParams(c(s))),
            ErrorKind::Policy(PolicyError::Failed(s)) => ErrorKind::Policy(PolicyError::Failed(c(s))),
            ErrorKind::Rule { index, message } => ErrorKind::Rule { index, message: c(message) },
            ErrorKind::InvalidOutput(s) => ErrorKind::InvalidOutput(c(s)),
            other => other,
        }
    }
}

impl PluginError {
    /// An error of `plugin`, its texts bounded (see [`clip`]).
    pub(crate) fn new(plugin: &PluginId, kind: ErrorKind) -> Self {
        let plugin = PluginId { name: clip(&plugin.name, 255), ..plugin.clone() };
        Self { plugin, kind: kind.bounded() }
    }
}

/// An error from loading or calling a plugin.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("plugin {plugin}: {kind}")]
pub struct PluginError {
    /// Which plugin.
    pub plugin: PluginId,
    /// What went wrong.
    pub kind: ErrorKind,
}
