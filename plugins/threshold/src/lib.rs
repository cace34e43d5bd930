//! `threshold`: choose the best candidate only if its score is at least `min`.
//! Params: `min` (required, finite); `fallback` = `none` (abstain, default) | `best`.

use arbiter_sdk::prelude::*;

/// The threshold policy.
pub struct Threshold;

impl Policy for Threshold {
    fn info() -> PolicyInfo {
        PolicyInfo::new("threshold", env!("CARGO_PKG_VERSION")).params_doc(
            "min: required finite number; the best score must be >= min\n\
             fallback: none (abstain, default) | best (choose the best anyway)",
        )
    }

    fn select(req: Request) -> Result<Selection, PolicyError> {
        req.params.reject_unknown(&["min", "fallback"])?;
        let min = req.params.required_number("min")?;
        let fallback = req.params.choice("fallback", &["none", "best"])?.unwrap_or("none");
        if req.candidates.is_empty() {
            return Err(PolicyError::NoCandidates);
        }
        let ranking = rank_by_score(&req.candidates);
        let Some(top) = best(&req.candidates) else {
            return Ok(Selection { chosen: None, ranking, reason: "no candidate has a usable score".into() });
        };
        let score = top.score.unwrap_or(f32::NAN);
        let (chosen, reason) = if score >= min {
            (Some(top.index), format!("candidate {} scores {score} >= min {min}", top.index))
        } else if fallback == "best" {
            (Some(top.index), format!("best score {score} < min {min}; fallback=best chose candidate {}", top.index))
        } else {
            (None, format!("best score {score} (candidate {}) < min {min}; abstaining", top.index))
        };
        Ok(Selection { chosen, ranking, reason })
    }
}

export_policy!(Threshold);
