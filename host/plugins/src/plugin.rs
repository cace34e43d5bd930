//! A loaded plugin: its identity, limits and pre-instantiated component, and its calls.
//!
//! `Plugin` is immutable and `Send + Sync`: share it in an `Arc`; every call builds its own
//! `Store` from the `InstancePre`, so concurrent calls never share guest state and a trap in
//! one costs only that call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::backend::{NoModel, RewardBackend};
use crate::bindings::{PolicyPre, RulePre, candidate_to_wit, wit};
use crate::call::{self, CallStats};
use crate::error::{ErrorKind, PluginError, PluginId};
use crate::host::Shared;
use crate::limits::Limits;
use crate::state::CallState;
use crate::types::{Candidate, Message, PolicyInfo, Request, Selection};
use crate::validate;

/// Which world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// World `policy`: exports `selector`.
    Policy,
    /// World `rule`: exports `scorer`.
    Rule,
}

impl PluginKind {
    /// `policy` or `rule`.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Policy => "policy",
            PluginKind::Rule => "rule",
        }
    }
}

/// Facts gathered while loading, for `plugin check` and `/v1/policies`.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Size of the plugin binary.
    pub size_bytes: usize,
    /// Compile (or cache load) time.
    pub compile_time: Duration,
    /// Whether the compiled artifact came from the on-disk cache.
    pub from_cache: bool,
    /// Import names of the component.
    pub imports: Vec<String>,
    /// Export names of the component.
    pub exports: Vec<String>,
    /// Cost of the load-time smoke call (`info()` or `name()`/`version()`).
    pub smoke: CallStats,
}

pub(crate) enum Prepared {
    Policy(PolicyPre<CallState>),
    Rule(RulePre<CallState>),
}

/// A loaded, type-checked plugin.
pub struct Plugin {
    shared: Arc<Shared>,
    id: PluginId,
    info: PolicyInfo,
    limits: Limits,
    prepared: Prepared,
    report: LoadReport,
    /// Calls running now (bounded by `HostConfig::max_calls_per_plugin`).
    running: AtomicU32,
}

/// A running call's claim on its plugin's concurrency share; released on drop.
struct Running<'p>(&'p AtomicU32);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("id", &self.id).field("kind", &self.kind()).finish_non_exhaustive()
    }
}

impl Plugin {
    /// Runs the smoke call and completes the identity from the plugin's own answer.
    pub(crate) fn prepare(
        shared: Arc<Shared>,
        id: PluginId,
        prepared: Prepared,
        limits: Limits,
        mut report: LoadReport,
    ) -> Result<Self, PluginError> {
        let smoke = Limits::smoke();
        let stack = shared.config.max_wasm_stack;
        let fail = |kind| PluginError::new(&id, kind);
        let mut store = call::new_store(&shared.engine, &smoke, Arc::new(NoModel), 0);
        let outcome: wasmtime::Result<PolicyInfo> = match &prepared {
            Prepared::Policy(pre) => pre
                .instantiate(&mut store)
                .and_then(|p| p.arbiter_policy_selector().call_info(&mut store))
                .map(Into::into),
            Prepared::Rule(pre) => pre.instantiate(&mut store).and_then(|r| {
                let scorer = r.arbiter_policy_scorer();
                let name = scorer.call_name(&mut store)?;
                let version = scorer.call_version(&mut store)?;
                Ok(PolicyInfo { name, version, wants_prescored: false, params_doc: String::new() })
            }),
        };
        let stats = call::finish(&mut store);
        let info = outcome.map_err(|e| fail(call::classify(&e, &stats, &smoke, stack)))?;
        validate::identity(&info).map_err(|m| fail(ErrorKind::InvalidOutput(m)))?;
        report.smoke = stats;
        let id = PluginId { name: info.name.clone(), version: info.version.clone(), sha256: id.sha256 };
        Ok(Self { shared, id, info, limits, prepared, report, running: AtomicU32::new(0) })
    }

    /// Name, version and sha256.
    pub fn id(&self) -> &PluginId {
        &self.id
    }

    /// Policy or rule.
    pub fn kind(&self) -> PluginKind {
        match self.prepared {
            Prepared::Policy(_) => PluginKind::Policy,
            Prepared::Rule(_) => PluginKind::Rule,
        }
    }

    /// What `info()` answered (for rules: name and version, not prescored, no params doc).
    pub fn info(&self) -> &PolicyInfo {
        &self.info
    }

    /// The per-call limits of this plugin.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Facts from loading.
    pub fn load_report(&self) -> &LoadReport {
        &self.report
    }

    /// Claims one of this plugin's concurrent-call slots.
    fn claim(&self) -> Result<Running<'_>, PluginError> {
        let cap = self.shared.config.max_calls_per_plugin.max(1);
        let before = self.running.fetch_add(1, Ordering::AcqRel);
        let claim = Running(&self.running);
        if before >= cap {
            return Err(self.error(ErrorKind::Busy(format!(
                "{before} calls of this plugin are running, its limit of concurrent calls is {cap}"
            ))));
        }
        Ok(claim)
    }

    fn error(&self, kind: ErrorKind) -> PluginError {
        PluginError::new(&self.id, kind)
    }

    fn wrong_kind(&self, wanted: PluginKind) -> PluginError {
        self.error(ErrorKind::Load(format!(
            "is a {} plugin, but was called as a {}",
            self.kind().as_str(),
            wanted.as_str()
        )))
    }

    /// Runs `select` on a fresh instance. `reward` serves the guest's `reward` imports.
    ///
    /// # Errors
    /// Oversize input, any limit the guest breaks, its own `policy-error`, or output that
    /// breaks the contract (see [`crate::validate`]).
    pub fn select(&self, req: &Request, reward: Arc<dyn RewardBackend>) -> Result<(Selection, CallStats), PluginError> {
        let Prepared::Policy(pre) = &self.prepared else {
            return Err(self.wrong_kind(PluginKind::Policy));
        };
        validate::request(req, &self.limits).map_err(|m| self.error(ErrorKind::InputTooLarge(m)))?;
        let _running = self.claim()?;
        let wit_req = wit::Request::from(req);
        let mut store = call::new_store(&self.shared.engine, &self.limits, reward, req.seed);
        let outcome =
            pre.instantiate(&mut store).and_then(|p| p.arbiter_policy_selector().call_select(&mut store, &wit_req));
        let stats = call::finish(&mut store);
        let reward_failure = store.data_mut().reward_failure.take();
        let answer = outcome.map_err(|e| self.error(call::classify(&e, &stats, &self.limits, self.stack_cap())));
        let selection = answer.and_then(|a| a.map_err(|e| self.error(ErrorKind::Policy(e.into()))));
        let selection = selection.map_err(|e| blame_reward(e, reward_failure))?;
        let selection = validate::selection(selection.into(), req.candidates.len(), &self.limits)
            .map_err(|m| self.error(ErrorKind::InvalidOutput(m)))?;
        Ok((selection, stats))
    }

    /// Runs the rule on every candidate in one fresh instance; returns one value per candidate.
    /// `params` are the parameters addressed to this rule (prefix already stripped).
    ///
    /// # Errors
    /// As [`Plugin::select`], plus [`ErrorKind::Rule`] when the rule rejects a candidate.
    pub fn score(
        &self,
        conversation: &[Message],
        candidates: &[Candidate],
        params: &[(String, String)],
    ) -> Result<(Vec<f32>, CallStats), PluginError> {
        let Prepared::Rule(pre) = &self.prepared else {
            return Err(self.wrong_kind(PluginKind::Rule));
        };
        let probe = Request {
            conversation: conversation.to_vec(),
            candidates: candidates.to_vec(),
            params: params.to_vec(),
            seed: 0,
        };
        validate::request(&probe, &self.limits).map_err(|m| self.error(ErrorKind::InputTooLarge(m)))?;
        let _running = self.claim()?;
        let conv: Vec<wit::Message> = conversation.iter().map(Into::into).collect();
        let mut store = call::new_store(&self.shared.engine, &self.limits, Arc::new(NoModel), 0);
        let mut values = Vec::with_capacity(candidates.len());
        let outcome: wasmtime::Result<Result<(), (u32, String)>> = pre.instantiate(&mut store).and_then(|rule| {
            let scorer = rule.arbiter_policy_scorer();
            for (i, c) in candidates.iter().enumerate() {
                let cand = candidate_to_wit(i, c);
                match scorer.call_score(&mut store, &conv, &cand, params)? {
                    Ok(v) => values.push(v),
                    Err(message) => return Ok(Err((cand.index, message))),
                }
            }
            Ok(Ok(()))
        });
        let stats = call::finish(&mut store);
        let answer = outcome.map_err(|e| self.error(call::classify(&e, &stats, &self.limits, self.stack_cap())))?;
        answer.map_err(|(index, message)| {
            // The contract's marker for a caller's mistake (wit/scorer.wit).
            self.error(match message.strip_prefix("invalid params: ") {
                Some(m) => ErrorKind::Policy(crate::types::PolicyError::InvalidParams(m.to_owned())),
                None => ErrorKind::Rule { index, message },
            })
        })?;
        Ok((values, stats))
    }

    fn stack_cap(&self) -> usize {
        self.shared.config.max_wasm_stack
    }
}

/// A guest that failed (its own error, or a trap) after a `reward` call failed is reported by
/// that call's typed cause: a full queue or an over-long input is the same error whether the
/// host prescored or a lazy policy asked. Limits the guest broke and bad params stay its own.
fn blame_reward(e: PluginError, reward_failure: Option<crate::backend::RewardError>) -> PluginError {
    match (reward_failure, &e.kind) {
        (Some(cause), ErrorKind::Policy(crate::types::PolicyError::Failed(_)) | ErrorKind::Trap(_)) => {
            PluginError::new(&e.plugin, ErrorKind::Reward(cause))
        }
        _ => e,
    }
}
