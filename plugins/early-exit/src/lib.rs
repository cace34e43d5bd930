//! `early-exit`: a lazy policy that scores candidates in order, `chunk` at a time, through
//! the host's reward model, and stops at the first whose score is >= `min`: the policy that
//! saves model compute. Candidates the host already scored are not scored again.
//!
//! Params: `min` (required, finite); `chunk` (integer >= 1, default 4);
//! `fallback` = `none` (abstain when nothing clears, default) | `best` (best scored).
//! The ranking lists only the candidates that were scored, best first.

use arbiter_sdk::prelude::*;

/// The early-exit policy.
pub struct EarlyExit;

impl Policy for EarlyExit {
    fn info() -> PolicyInfo {
        PolicyInfo::new("early-exit", env!("CARGO_PKG_VERSION"))
            .params_doc(
                "min: required finite number; stop at the first candidate scoring >= min\n\
                 chunk: candidates scored per reward call (default 4)\n\
                 fallback: none (abstain, default) | best (best scored when none clears)",
            )
            .lazy()
    }

    fn select(req: Request) -> Result<Selection, PolicyError> {
        req.params.reject_unknown(&["min", "chunk", "fallback"])?;
        let min = req.params.required_number("min")?;
        let chunk = req.params.integer("chunk")?.unwrap_or(4);
        if chunk == 0 {
            return Err(PolicyError::InvalidParams("`chunk`: must be >= 1".into()));
        }
        let fallback = req.params.choice("fallback", &["none", "best"])?.unwrap_or("none");
        if req.candidates.is_empty() {
            return Err(PolicyError::NoCandidates);
        }
        let mut scored: Vec<Candidate> = Vec::new();
        let mut model_calls = 0usize;
        for group in req.candidates.chunks(usize::try_from(chunk).unwrap_or(usize::MAX)) {
            let missing: Vec<String> = group.iter().filter(|c| c.score.is_none()).map(|c| c.text.clone()).collect();
            let mut fresh = if missing.is_empty() {
                Vec::new().into_iter()
            } else {
                model_calls += 1;
                reward::score(&req.conversation, &missing).map_err(PolicyError::Failed)?.into_iter()
            };
            let first_in_group = scored.len();
            for c in group {
                let score = c.score.or_else(|| fresh.next());
                scored.push(Candidate { score, ..c.clone() });
            }
            // The whole chunk was scored in one call: rank all of it, choose the first to clear.
            let hit = scored[first_in_group..].iter().find(|c| c.score.is_some_and(|s| s >= min));
            if let Some(c) = hit {
                let reason = format!(
                    "candidate {} scores {} >= min {min}; stopped after scoring {} of {} ({model_calls} model call(s))",
                    c.index,
                    c.score.unwrap_or(f32::NAN),
                    scored.len(),
                    req.candidates.len()
                );
                let chosen = Some(c.index);
                return Ok(Selection { chosen, ranking: rank_by_score(&scored), reason });
            }
        }
        let ranking = rank_by_score(&scored);
        let top = best(&scored).map(|c| c.index);
        let (chosen, what) = match (fallback, top) {
            ("best", Some(i)) => (Some(i), format!("fallback=best chose candidate {i}")),
            _ => (None, "abstaining".to_owned()),
        };
        let reason = format!("no candidate of {} scores >= min {min}; {what}", req.candidates.len());
        Ok(Selection { chosen, ranking, reason })
    }
}

export_policy!(EarlyExit);
