//! `__NAME__`: the highest score wins; ties go to the lowest index; NaN is never chosen.
//! Abstains when no candidate has a usable score. Param: `min` (optional finite number):
//! abstain when the best score is below it.

use arbiter_sdk::prelude::*;

struct Plugin;

impl Policy for Plugin {
    fn info() -> PolicyInfo {
        PolicyInfo::new("__NAME__", "0.1.0").params_doc("min: optional finite number; abstain below it")
    }

    fn select(req: Request) -> Result<Selection, PolicyError> {
        req.params.reject_unknown(&["min"])?;
        let min = req.params.number("min")?;
        if req.candidates.is_empty() {
            return Err(PolicyError::NoCandidates);
        }
        let ranking = rank_by_score(&req.candidates);
        let Some(top) = best(&req.candidates) else {
            return Ok(Selection { chosen: None, ranking, reason: "no candidate has a usable score".into() });
        };
        let score = top.score.unwrap_or(f32::NAN);
        if min.is_some_and(|m| score < m) {
            log::info(&format!("best score {score} is below min; abstaining"));
            return Ok(Selection { chosen: None, ranking, reason: format!("best score {score} < min") });
        }
        Ok(Selection { chosen: Some(top.index), ranking, reason: format!("candidate {} scores {score}", top.index) })
    }
}

export_policy!(Plugin);
