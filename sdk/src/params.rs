//! Typed access to a request's string parameters, with errors that name the parameter.
//!
//! Every failure is a [`PolicyError::InvalidParams`] whose message starts with the
//! parameter's name in backticks, so callers see exactly which one to fix.

use crate::types::PolicyError;

/// The `params` of a request: string key/value pairs in caller order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Params(Vec<(String, String)>);

fn invalid(msg: String) -> PolicyError {
    PolicyError::InvalidParams(msg)
}

impl Params {
    /// Wraps key/value pairs.
    pub fn new(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }

    /// All pairs, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The raw value of `key` (the first, if repeated).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Fails on the first parameter not in `known`, listing what is accepted.
    ///
    /// # Errors
    /// `invalid-params` naming the unknown parameter.
    pub fn reject_unknown(&self, known: &[&str]) -> Result<(), PolicyError> {
        match self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            None => Ok(()),
            Some((k, _)) if known.is_empty() => {
                Err(invalid(format!("unknown parameter `{k}` (this policy takes none)")))
            }
            Some((k, _)) => Err(invalid(format!("unknown parameter `{k}` (accepted: {})", known.join(", ")))),
        }
    }

    /// `key` as a finite number, if present.
    ///
    /// # Errors
    /// `invalid-params` when present but not a finite number.
    pub fn number(&self, key: &str) -> Result<Option<f32>, PolicyError> {
        let Some(raw) = self.get(key) else { return Ok(None) };
        match raw.trim().parse::<f32>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(invalid(format!("`{key}`: expected a finite number, got {raw:?}"))),
        }
    }

    /// `key` as a finite number; it must be present.
    ///
    /// # Errors
    /// `invalid-params` when missing or malformed.
    pub fn required_number(&self, key: &str) -> Result<f32, PolicyError> {
        self.number(key)?.ok_or_else(|| invalid(format!("`{key}` is required")))
    }

    /// `key` as a non-negative integer, if present.
    ///
    /// # Errors
    /// `invalid-params` when present but not a non-negative integer.
    pub fn integer(&self, key: &str) -> Result<Option<u64>, PolicyError> {
        let Some(raw) = self.get(key) else { return Ok(None) };
        raw.trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| invalid(format!("`{key}`: expected a non-negative integer, got {raw:?}")))
    }

    /// `key` as one of `allowed`, if present.
    ///
    /// # Errors
    /// `invalid-params` listing the allowed values.
    pub fn choice<'a>(&self, key: &str, allowed: &[&'a str]) -> Result<Option<&'a str>, PolicyError> {
        let Some(raw) = self.get(key) else { return Ok(None) };
        let raw = raw.trim();
        allowed
            .iter()
            .find(|a| **a == raw)
            .copied()
            .map(Some)
            .ok_or_else(|| invalid(format!("`{key}`: expected one of {}, got {raw:?}", allowed.join(" | "))))
    }

    /// `key` as a comma-separated list of non-empty, trimmed items, if present.
    ///
    /// # Errors
    /// `invalid-params` when an item is empty (e.g. `a,,b`).
    pub fn list(&self, key: &str) -> Result<Option<Vec<&str>>, PolicyError> {
        let Some(raw) = self.get(key) else { return Ok(None) };
        let items: Vec<&str> = raw.split(',').map(str::trim).collect();
        if items.iter().any(|i| i.is_empty()) {
            return Err(invalid(format!("`{key}`: empty item in list {raw:?}")));
        }
        Ok(Some(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Params {
        Params::new(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect())
    }

    fn msg(e: PolicyError) -> String {
        match e {
            PolicyError::InvalidParams(m) => m,
            other => panic!("expected invalid-params, got {other:?}"),
        }
    }

    #[test]
    fn numbers_name_the_parameter() {
        let ps = p(&[("min", "0.5"), ("bad", "x"), ("nan", "NaN")]);
        assert_eq!(ps.required_number("min"), Ok(0.5));
        assert!(msg(ps.number("bad").expect_err("x")).starts_with("`bad`"));
        assert!(msg(ps.number("nan").expect_err("nan")).contains("finite"));
        assert!(msg(ps.required_number("max").expect_err("missing")).contains("`max` is required"));
        assert_eq!(ps.number("absent"), Ok(None));
    }

    #[test]
    fn choices_lists_and_unknowns() {
        let ps = p(&[("fallback", "best"), ("by", "shortest, first"), ("x", "a,,b")]);
        assert_eq!(ps.choice("fallback", &["none", "best"]), Ok(Some("best")));
        assert!(msg(ps.choice("fallback", &["none"]).expect_err("bad")).contains("none"));
        assert_eq!(ps.list("by"), Ok(Some(vec!["shortest", "first"])));
        assert!(msg(ps.list("x").expect_err("empty")).contains("empty item"));
        assert!(msg(ps.reject_unknown(&["fallback", "by"]).expect_err("x")).contains("`x`"));
        assert!(msg(p(&[("a", "1")]).reject_unknown(&[]).expect_err("none")).contains("takes none"));
        assert_eq!(p(&[("n", "3")]).integer("n"), Ok(Some(3)));
        assert!(p(&[("n", "-3")]).integer("n").is_err());
    }
}
