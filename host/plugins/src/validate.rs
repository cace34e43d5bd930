//! The output contract, checked on every guest answer, and the input caps.
//!
//! A plugin is untrusted: whatever it returns is checked here before anyone downstream sees
//! it, so the daemon can index `candidates[chosen]` without a bounds check of its own.

use crate::limits::Limits;
use crate::types::{PolicyInfo, Request, Selection};

/// Longest accepted plugin name or version.
const MAX_IDENT: usize = 64;

/// Checks a selection against a request of `n` candidates.
pub(crate) fn selection(s: Selection, n: usize, limits: &Limits) -> Result<Selection, String> {
    if let Some(c) = s.chosen
        && c as usize >= n
    {
        return Err(format!("chosen index {c} is out of range for {n} candidates"));
    }
    if s.ranking.len() > n {
        return Err(format!("ranking has {} entries for {n} candidates", s.ranking.len()));
    }
    let mut seen = vec![false; n];
    for &i in &s.ranking {
        let slot =
            seen.get_mut(i as usize).ok_or_else(|| format!("ranking index {i} is out of range for {n} candidates"))?;
        if std::mem::replace(slot, true) {
            return Err(format!("ranking lists candidate {i} twice"));
        }
    }
    if s.reason.len() > limits.max_reason_bytes {
        return Err(format!("reason is {} bytes, limit {}", s.reason.len(), limits.max_reason_bytes));
    }
    Ok(s)
}

/// Checks the request against the input caps before any guest sees it.
pub(crate) fn request(r: &Request, limits: &Limits) -> Result<(), String> {
    if r.candidates.len() > limits.max_candidates {
        return Err(format!("{} candidates, limit {}", r.candidates.len(), limits.max_candidates));
    }
    let bytes = r.conversation.iter().map(|m| m.role.len() + m.content.len()).sum::<usize>()
        + r.candidates
            .iter()
            .map(|c| c.text.len() + c.features.iter().map(|(k, _)| k.len() + 4).sum::<usize>())
            .sum::<usize>()
        + r.params.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    if bytes > limits.max_input_bytes {
        return Err(format!("{bytes} bytes of text, limit {}", limits.max_input_bytes));
    }
    Ok(())
}

/// A plugin's name and version must be short, printable identifiers: they appear in URLs,
/// metrics labels and logs.
pub(crate) fn identity(info: &PolicyInfo) -> Result<(), String> {
    for (what, value) in [("name", &info.name), ("version", &info.version)] {
        let ok = !value.is_empty()
            && value.len() <= MAX_IDENT
            && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
        if !ok {
            let shown = crate::error::clip(value, MAX_IDENT);
            return Err(format!("{what} {shown:?} must be 1–{MAX_IDENT} characters of [A-Za-z0-9._+-]"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(chosen: Option<u32>, ranking: Vec<u32>, reason: &str) -> Selection {
        Selection { chosen, ranking, reason: reason.into() }
    }

    #[test]
    fn selection_contract() {
        let l = Limits::default();
        assert!(selection(sel(Some(1), vec![1, 0], "ok"), 2, &l).is_ok());
        assert!(selection(sel(None, vec![], ""), 0, &l).is_ok());
        let e = selection(sel(Some(2), vec![], ""), 2, &l).expect_err("chosen");
        assert!(e.contains("chosen index 2"), "{e}");
        let e = selection(sel(None, vec![0, 5], ""), 2, &l).expect_err("range");
        assert!(e.contains("index 5"), "{e}");
        let e = selection(sel(None, vec![1, 1], ""), 2, &l).expect_err("dup");
        assert!(e.contains("twice"), "{e}");
        let e = selection(sel(None, vec![0, 1, 0], ""), 2, &l).expect_err("len");
        assert!(e.contains("3 entries"), "{e}");
        let long = "x".repeat(l.max_reason_bytes + 1);
        assert!(selection(sel(None, vec![], &long), 2, &l).is_err());
    }

    #[test]
    fn identity_rules() {
        let mut i = PolicyInfo {
            name: "argmax".into(),
            version: "1.0.0".into(),
            wants_prescored: true,
            params_doc: String::new(),
        };
        assert!(identity(&i).is_ok());
        i.name = "bad name".into();
        assert!(identity(&i).expect_err("space").contains("name"));
        i.name = "ok".into();
        i.version = String::new();
        assert!(identity(&i).expect_err("empty").contains("version"));
    }
}
