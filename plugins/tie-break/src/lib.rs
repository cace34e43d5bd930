//! `tie-break`: argmax where every candidate within `epsilon` of the top score is tied, and
//! ties are broken by an ordered rule list.
//!
//! Params: `epsilon` (finite, >= 0, default 0); `by` = comma list of `shortest`, `longest`,
//! `first`, `last`, `random` (seeded by the request), `feature:<name>` (higher wins, missing
//! last); default `shortest,first`. `first` is always appended, so the order is total.
//! Length is tokens, then characters (characters decide when the host has no tokenizer).

use std::cmp::Ordering;

use arbiter_sdk::prelude::*;

/// The tie-break policy.
pub struct TieBreak;

enum By {
    Shortest,
    Longest,
    First,
    Last,
    Random,
    Feature(String),
}

fn parse_by(items: &[&str]) -> Result<Vec<By>, PolicyError> {
    items
        .iter()
        .map(|item| match *item {
            "shortest" => Ok(By::Shortest),
            "longest" => Ok(By::Longest),
            "first" => Ok(By::First),
            "last" => Ok(By::Last),
            "random" => Ok(By::Random),
            other => match other.strip_prefix("feature:") {
                Some(name) if !name.is_empty() => Ok(By::Feature(name.to_owned())),
                _ => Err(PolicyError::InvalidParams(format!(
                    "`by`: unknown rule {other:?} (use shortest, longest, first, last, random, feature:<name>)"
                ))),
            },
        })
        .collect()
}

fn length(c: &Candidate) -> (u32, usize) {
    (c.tokens, c.text.chars().count())
}

impl Policy for TieBreak {
    fn info() -> PolicyInfo {
        PolicyInfo::new("tie-break", env!("CARGO_PKG_VERSION")).params_doc(
            "epsilon: finite >= 0 (default 0); candidates within epsilon of the top score are tied\n\
             by: comma list of shortest|longest|first|last|random|feature:<name> (default shortest,first)",
        )
    }

    fn select(req: Request) -> Result<Selection, PolicyError> {
        req.params.reject_unknown(&["epsilon", "by"])?;
        let epsilon = req.params.number("epsilon")?.unwrap_or(0.0);
        if epsilon < 0.0 {
            return Err(PolicyError::InvalidParams(format!("`epsilon`: must be >= 0, got {epsilon}")));
        }
        let by_items = req.params.list("by")?.unwrap_or_else(|| vec!["shortest", "first"]);
        let rules = parse_by(&by_items)?;
        if req.candidates.is_empty() {
            return Err(PolicyError::NoCandidates);
        }
        let by_score = rank_by_score(&req.candidates);
        let Some(top) = best(&req.candidates).and_then(|c| c.usable_score()) else {
            return Ok(Selection { chosen: None, ranking: by_score, reason: "no candidate has a usable score".into() });
        };
        let mut rng = Rng::from_request(&req);
        let keys: Vec<u64> = req.candidates.iter().map(|_| rng.next_u64()).collect();
        let mut tied: Vec<&Candidate> =
            req.candidates.iter().filter(|c| c.usable_score().is_some_and(|s| s >= top - epsilon)).collect();
        tied.sort_by(|a, b| {
            rules
                .iter()
                .map(|rule| match rule {
                    By::Shortest => length(a).cmp(&length(b)),
                    By::Longest => length(b).cmp(&length(a)),
                    By::First => a.index.cmp(&b.index),
                    By::Last => b.index.cmp(&a.index),
                    By::Random => keys[a.index as usize].cmp(&keys[b.index as usize]),
                    By::Feature(name) => compare_scores(a.feature(name), b.feature(name)),
                })
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
                .then(a.index.cmp(&b.index))
        });
        let chosen = tied[0].index;
        let mut ranking: Vec<u32> = tied.iter().map(|c| c.index).collect();
        ranking.extend(by_score.into_iter().filter(|i| !tied.iter().any(|c| c.index == *i)));
        let reason = format!(
            "{} candidate(s) within {epsilon} of the top score {top}; broken by {} -> candidate {chosen}",
            tied.len(),
            by_items.join(",")
        );
        Ok(Selection { chosen: Some(chosen), ranking, reason })
    }
}

export_policy!(TieBreak);
