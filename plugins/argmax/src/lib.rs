//! `argmax`: choose the highest score; ties go to the lowest index; NaN is never chosen.
//! Abstains when no candidate has a usable score. Takes no parameters.

use arbiter_sdk::prelude::*;

/// The argmax policy.
pub struct Argmax;

impl Policy for Argmax {
    fn info() -> PolicyInfo {
        PolicyInfo::new("argmax", env!("CARGO_PKG_VERSION")).params_doc("(none)")
    }

    fn select(req: Request) -> Result<Selection, PolicyError> {
        req.params.reject_unknown(&[])?;
        if req.candidates.is_empty() {
            return Err(PolicyError::NoCandidates);
        }
        let ranking = rank_by_score(&req.candidates);
        let n = req.candidates.len();
        Ok(match best(&req.candidates) {
            Some(c) => Selection {
                chosen: Some(c.index),
                ranking,
                reason: format!("candidate {} has the highest score ({}) of {n}", c.index, c.score.unwrap_or(f32::NAN)),
            },
            None => {
                Selection { chosen: None, ranking, reason: format!("none of the {n} candidates has a usable score") }
            }
        })
    }
}

export_policy!(Argmax);
