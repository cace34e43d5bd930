//! The selection pipeline: resolve plugins, count tokens, prescore, run rules, run the policy.
//!
//! Shared by `arbiter select` and the daemon's `/v1/select`, so both give identical answers
//! for the same body. Parameters named `<rule>.<key>` go to that rule (prefix stripped);
//! the rest go to the policy.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use arbiter_plugins::{
    Candidate, Limits, LogLine, Message, Plugin, PluginError, PluginHost, PluginKind, Request, RewardBackend,
    RewardError,
};

use crate::bundled;
use crate::input::{PolicyRef, Score, SelectInput, SelectOutput};

/// Why a selection failed.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    /// The request itself is wrong (fields, missing scores, wrong plugin kind).
    #[error("{0}")]
    Input(String),
    /// A plugin failed to load or call.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// Candidates without a score could not be scored.
    #[error("candidates {candidates:?} have no score, and scoring them failed: {error}")]
    Scoring {
        /// Indices of the unscored candidates.
        candidates: Vec<usize>,
        /// Why scoring failed.
        error: RewardError,
    },
    /// The request was abandoned before the policy ran.
    #[error("the request was abandoned")]
    Cancelled,
}

/// Loads a plugin by bundled name or by path (anything with a `/` or a `.wasm`/`.wat` suffix).
///
/// # Errors
/// Unknown names list the bundled plugins; load errors are the host's.
pub fn load_plugin(host: &PluginHost, spec: &str, limits: &Limits) -> Result<Plugin, SelectError> {
    let looks_like_path = spec.contains('/') || spec.ends_with(".wasm") || spec.ends_with(".wat");
    if looks_like_path || Path::new(spec).exists() && bundled::get(spec).is_none() {
        return Ok(host.load_file(Path::new(spec), limits.clone())?);
    }
    match bundled::get(spec) {
        Some(bytes) => Ok(host.load(spec, bytes, limits.clone())?),
        None => Err(SelectError::Input(format!(
            "unknown plugin `{spec}`: not a file, and not bundled (bundled: {})",
            bundled::names().collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Remembers the scores the backend produced for the request's conversation, so a lazy
/// policy's scores can be reported per candidate.
struct Recording {
    inner: Arc<dyn RewardBackend>,
    conversation: Vec<Message>,
    seen: Mutex<HashMap<String, f32>>,
}

impl RewardBackend for Recording {
    fn score(&self, conversation: &[Message], responses: &[String]) -> Result<Vec<f32>, RewardError> {
        let scores = self.inner.score(conversation, responses)?;
        if conversation == self.conversation.as_slice()
            && let Ok(mut seen) = self.seen.lock()
        {
            for (text, s) in responses.iter().zip(&scores) {
                seen.insert(text.clone(), *s);
            }
        }
        Ok(scores)
    }

    fn count_tokens(&self, text: &str) -> u32 {
        self.inner.count_tokens(text)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn cancelled(&self) -> bool {
        self.inner.cancelled()
    }
}

/// A selection's answer plus what the plugins logged while producing it.
#[derive(Debug)]
pub struct Outcome {
    /// The answer.
    pub output: SelectOutput,
    /// `(plugin name, line)` for every log line, rules first, in call order.
    pub logs: Vec<(String, LogLine)>,
}

/// Runs one selection.
///
/// # Errors
/// [`SelectError::Input`] for a wrong body; [`SelectError::Plugin`] for any plugin failure.
pub fn run<R: Borrow<Plugin>>(
    policy: &Plugin,
    rules: &[R],
    input: &SelectInput,
    reward: Arc<dyn RewardBackend>,
) -> Result<Outcome, SelectError> {
    if policy.kind() != PluginKind::Policy {
        return Err(SelectError::Input(format!("plugin {} is a rule, not a policy", policy.id())));
    }
    let rules: Vec<&Plugin> = rules.iter().map(Borrow::borrow).collect();
    if let Some(rule) = rules.iter().find(|r| r.kind() != PluginKind::Rule) {
        return Err(SelectError::Input(format!("plugin {} is a policy, not a rule", rule.id())));
    }
    let conversation = input.conversation();
    let mut candidates: Vec<Candidate> = input
        .candidate_list()
        .into_iter()
        .enumerate()
        .map(|(i, c)| Candidate {
            index: u32::try_from(i).unwrap_or(u32::MAX),
            tokens: reward.count_tokens(&c.text),
            text: c.text,
            score: c.score,
            features: Vec::new(),
        })
        .collect();

    if policy.info().wants_prescored {
        prescore(&conversation, &mut candidates, reward.as_ref())?;
    }

    let mut policy_params: Vec<(String, String)> = Vec::new();
    let mut rule_params: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for (key, value) in &input.params {
        let value = value.clone().into_string();
        let addressed = rules
            .iter()
            .map(|r| r.id().name.as_str())
            .find(|name| key.strip_prefix(name).is_some_and(|rest| rest.starts_with('.')));
        match addressed {
            Some(name) => rule_params.entry(name).or_default().push((key[name.len() + 1..].to_owned(), value)),
            None => policy_params.push((key.clone(), value)),
        }
    }
    let mut logs = Vec::new();
    for rule in &rules {
        let params = rule_params.get(rule.id().name.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        let (values, stats) = rule.score(&conversation, &candidates, params)?;
        logs.extend(stats.log.into_iter().map(|l| (rule.id().name.clone(), l)));
        for (c, v) in candidates.iter_mut().zip(values) {
            c.features.push((rule.id().name.clone(), v));
        }
    }

    // Rules and prescoring may have taken a while: an abandoned request stops here.
    if reward.cancelled() {
        return Err(SelectError::Cancelled);
    }
    let recording = Arc::new(Recording { inner: reward, conversation: conversation.clone(), seen: Mutex::default() });
    let request = Request { conversation, candidates, params: policy_params, seed: input.seed };
    let (selection, stats) = policy.select(&request, recording.clone())?;
    logs.extend(stats.log.into_iter().map(|l| (policy.id().name.clone(), l)));
    let seen = recording.seen.lock().map(|m| m.clone()).unwrap_or_default();

    let output = SelectOutput {
        chosen: selection.chosen,
        ranking: selection.ranking,
        reason: selection.reason,
        policy: PolicyRef {
            name: policy.id().name.clone(),
            version: policy.id().version.clone(),
            sha256: policy.id().sha256.clone(),
        },
        scores: request.candidates.iter().map(|c| Score(c.score.or_else(|| seen.get(&c.text).copied()))).collect(),
        features: request
            .candidates
            .iter()
            .map(|c| c.features.iter().map(|(k, v)| (k.clone(), Score(Some(*v)))).collect())
            .collect(),
    };
    Ok(Outcome { output, logs })
}

/// Scores every candidate that has no score, in one backend call.
fn prescore(
    conversation: &[Message],
    candidates: &mut [Candidate],
    reward: &dyn RewardBackend,
) -> Result<(), SelectError> {
    let missing: Vec<usize> = candidates.iter().filter(|c| c.score.is_none()).map(|c| c.index as usize).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let texts: Vec<String> = missing.iter().map(|&i| candidates[i].text.clone()).collect();
    let scores = reward
        .score(conversation, &texts)
        .map_err(|error| SelectError::Scoring { candidates: missing.clone(), error })?;
    if scores.len() != texts.len() {
        return Err(SelectError::Input(format!(
            "the reward model returned {} scores for {} responses",
            scores.len(),
            texts.len()
        )));
    }
    for (i, s) in missing.into_iter().zip(scores) {
        candidates[i].score = Some(s);
    }
    Ok(())
}
