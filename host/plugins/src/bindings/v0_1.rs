//! Contract `arbiter:policy@0.1.0`: its `bindgen!` site, and the conversions between its
//! generated types and the host's.
//!
//! Generated types stay in this module: `From` impls below turn them into [`crate::types`]
//! at the boundary, so neither a change in wasmtime's generator nor a later contract version
//! ripples through the host.
//! The `rule` world reuses the `policy` world's `types` and `log` bindings via `with`, so the
//! host implements each import trait exactly once.

#![allow(missing_docs, reason = "generated bindings")]

use crate::types;

pub(crate) mod policy_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "policy",
        imports: { default: trappable },
    });
}

pub(crate) mod rule_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "rule",
        imports: { default: trappable },
        with: {
            "arbiter:policy/types": super::policy_world::arbiter::policy::types,
            "arbiter:policy/log": super::policy_world::arbiter::policy::log,
        },
    });
}

pub(crate) use policy_world::arbiter::policy::types as wit;
pub(crate) use policy_world::arbiter::policy::{log as wit_log, reward as wit_reward};
pub(crate) use policy_world::{Policy, PolicyPre};
pub(crate) use rule_world::RulePre;

impl From<&types::Message> for wit::Message {
    fn from(m: &types::Message) -> Self {
        Self { role: m.role.clone(), content: m.content.clone() }
    }
}

impl From<wit::Message> for types::Message {
    fn from(m: wit::Message) -> Self {
        Self { role: m.role, content: m.content }
    }
}

/// Converts one candidate, forcing `index` to its position: the guest may rely on
/// `candidates[i].index == i`, whatever the caller filled in.
pub(crate) fn candidate_to_wit(position: usize, c: &types::Candidate) -> wit::Candidate {
    wit::Candidate {
        index: u32::try_from(position).unwrap_or(u32::MAX),
        text: c.text.clone(),
        tokens: c.tokens,
        score: c.score,
        features: c.features.clone(),
    }
}

impl From<&types::Request> for wit::Request {
    fn from(r: &types::Request) -> Self {
        Self {
            conversation: r.conversation.iter().map(Into::into).collect(),
            candidates: r.candidates.iter().enumerate().map(|(i, c)| candidate_to_wit(i, c)).collect(),
            params: r.params.clone(),
            seed: r.seed,
        }
    }
}

impl From<wit::PolicyInfo> for types::PolicyInfo {
    fn from(i: wit::PolicyInfo) -> Self {
        Self { name: i.name, version: i.version, wants_prescored: i.wants_prescored, params_doc: i.params_doc }
    }
}

impl From<wit::Selection> for types::Selection {
    fn from(s: wit::Selection) -> Self {
        Self { chosen: s.chosen, ranking: s.ranking, reason: s.reason }
    }
}

impl From<wit::PolicyError> for types::PolicyError {
    fn from(e: wit::PolicyError) -> Self {
        match e {
            wit::PolicyError::InvalidParams(s) => Self::InvalidParams(s),
            wit::PolicyError::NoCandidates => Self::NoCandidates,
            wit::PolicyError::Failed(s) => Self::Failed(s),
        }
    }
}

impl From<wit_log::Level> for types::LogLevel {
    fn from(l: wit_log::Level) -> Self {
        match l {
            wit_log::Level::Debug => Self::Debug,
            wit_log::Level::Info => Self::Info,
            wit_log::Level::Warn => Self::Warn,
            wit_log::Level::Error => Self::Error,
        }
    }
}
