//! Deterministic ordering of candidates by score.
//!
//! Invariant: higher scores first; NaN and missing scores after every real score; equal
//! scores (including `0.0` vs `-0.0`) in ascending index order. So the same input always
//! gives the same ranking, and a NaN is never ranked above a number.

use std::cmp::Ordering;

use crate::types::Candidate;

/// Orders two scores best first, NaN/`None` last; `Equal` for ties.
pub fn compare_scores(a: Option<f32>, b: Option<f32>) -> Ordering {
    let a = a.filter(|s| !s.is_nan());
    let b = b.filter(|s| !s.is_nan());
    match (a, b) {
        (Some(x), Some(y)) => y.partial_cmp(&x).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// A key whose unsigned order is the score order: NaN and missing lowest, `-0.0 == 0.0`.
fn order_key(score: Option<f32>) -> u32 {
    match score.filter(|s| !s.is_nan()) {
        None => 0,
        Some(s) => {
            // +0.0 turns -0.0 into 0.0 so the two tie; then the usual sign-flip trick
            // maps IEEE-754 order onto integer order (all real values land above 0).
            let bits = (s + 0.0).to_bits();
            if bits >> 31 == 1 { !bits } else { bits | 0x8000_0000 }
        }
    }
}

/// All candidate indices, best score first, ties by lowest index.
pub fn rank_by_score(candidates: &[Candidate]) -> Vec<u32> {
    // Sorting packed integers is several times cheaper in wasm than a comparator over
    // `Option<f32>`s, and this runs on every call of most policies.
    let mut keys: Vec<u64> =
        candidates.iter().map(|c| (u64::from(u32::MAX - order_key(c.score)) << 32) | u64::from(c.index)).collect();
    keys.sort_unstable();
    keys.into_iter().map(|k| k as u32).collect()
}

/// The candidate with the highest usable score (lowest index among ties), if any has one.
pub fn best(candidates: &[Candidate]) -> Option<&Candidate> {
    candidates
        .iter()
        .filter(|c| c.usable_score().is_some())
        .min_by(|a, b| compare_scores(a.score, b.score).then(a.index.cmp(&b.index)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(scores: &[Option<f32>]) -> Vec<Candidate> {
        scores
            .iter()
            .enumerate()
            .map(|(i, s)| Candidate { index: i as u32, score: *s, ..Candidate::default() })
            .collect()
    }

    #[test]
    fn rank_agrees_with_compare_scores() {
        let values = [f32::NAN, -0.0, 0.0, 1.0, -1.0, f32::INFINITY, f32::NEG_INFINITY, 3.5, 3.5, -2.25];
        let c = cands(&values.iter().map(|v| Some(*v)).chain([None]).collect::<Vec<_>>());
        let mut expected: Vec<&Candidate> = c.iter().collect();
        expected.sort_by(|a, b| compare_scores(a.score, b.score).then(a.index.cmp(&b.index)));
        let expected: Vec<u32> = expected.into_iter().map(|c| c.index).collect();
        assert_eq!(rank_by_score(&c), expected);
    }

    #[test]
    fn nan_and_missing_go_last_ties_by_index() {
        let c = cands(&[Some(1.0), Some(f32::NAN), None, Some(3.0), Some(1.0), Some(-0.0), Some(0.0)]);
        assert_eq!(rank_by_score(&c), vec![3, 0, 4, 5, 6, 1, 2]);
        assert_eq!(best(&c).map(|c| c.index), Some(3));
        assert_eq!(best(&cands(&[Some(f32::NAN), None])).map(|c| c.index), None);
        assert_eq!(best(&cands(&[Some(2.0), Some(2.0)])).map(|c| c.index), Some(0));
        assert_eq!(best(&cands(&[Some(f32::NEG_INFINITY), Some(f32::NAN)])).map(|c| c.index), Some(0));
        let c = cands(&[Some(f32::NEG_INFINITY), None, Some(f32::INFINITY), Some(-1e-30), Some(f32::MIN_POSITIVE)]);
        assert_eq!(rank_by_score(&c), vec![2, 4, 3, 0, 1]);
    }
}
