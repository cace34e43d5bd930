//! The behaviour cases every example plugin must answer exactly as the bundled Rust plugin it
//! ports: ties, ±0, NaN and ±inf (as the JSON strings callers send), empty input, missing and
//! malformed parameters, unknown parameters, extreme magnitudes, 64 and 1024 candidates.
//!
//! A case is a request body that both `arbiter select --input` and the daemon's `/v1/select`
//! accept; `policy`/`rules` are filled in by the runner.

use serde_json::{Value, json};

/// Candidates with these scores (`Value`s, so "NaN"/"inf" strings pass through as callers send them).
fn scored(scores: &[Value]) -> Value {
    let candidates: Vec<Value> =
        scores.iter().enumerate().map(|(i, s)| json!({"text": format!("response {i}"), "score": s})).collect();
    Value::Array(candidates)
}

fn case(scores: &[Value], params: Value) -> Value {
    json!({"messages": [{"role": "user", "content": "q"}], "candidates": scored(scores), "params": params})
}

/// `n` candidates with repeating scores (ties spread through the list).
fn many(n: usize) -> Vec<Value> {
    (0..n).map(|i| json!(((i * 7919) % 1000) as f64 / 100.0 - 3.0)).collect()
}

/// Score sets that exercise ranking: each is run with the policy's own parameters.
fn score_sets() -> Vec<Vec<Value>> {
    let nan = || json!("NaN");
    vec![
        vec![json!(1), json!(3), json!(2)],
        vec![json!(2), json!(2)],
        vec![json!(3), json!(1), json!(3), json!(-2)],
        vec![nan(), json!(-1), json!(0.5)],
        vec![nan(), nan()],
        vec![json!("-inf"), json!("inf"), json!(7)],
        vec![json!("-inf"), nan(), json!("-inf")],
        vec![json!(0.0), json!(-0.0)],
        vec![json!(-0.0), json!(0.0), json!(-1e-45)],
        vec![json!(5.5)],
        vec![json!(-4), json!(-2.5), json!(-9)],
        vec![json!(3.4e38), json!(-3.4e38), json!(1e-45)],
        many(64),
        many(1024),
    ]
}

/// Cases for an `argmax` port (no parameters).
pub fn argmax() -> Vec<Value> {
    let mut cases: Vec<Value> = score_sets().iter().map(|s| case(s, json!({}))).collect();
    cases.push(case(&[], json!({})));
    cases.push(case(&[json!(1)], json!({"min": "1"})));
    cases
}

/// Cases for a `threshold` port: `min` (required, finite) and `fallback` (none | best).
pub fn threshold() -> Vec<Value> {
    let sets = score_sets();
    let mut cases = Vec::new();
    for (i, s) in sets.iter().enumerate() {
        let params = match i % 3 {
            0 => json!({"min": "2"}),
            1 => json!({"min": "-1", "fallback": "none"}),
            _ => json!({"min": "4", "fallback": "best"}),
        };
        cases.push(case(s, params));
    }
    let two = [json!(1), json!(3)];
    for params in [
        json!({}),
        json!({"min": "x"}),
        json!({"min": "NaN"}),
        json!({"min": "inf"}),
        json!({"min": "1e39"}),
        json!({"min": " 3 "}),
        json!({"min": "-0"}),
        json!({"min": "3.0000001"}),
        json!({"min": "2", "fallback": "maybe"}),
        json!({"min": "2", "extra": "1"}),
    ] {
        cases.push(case(&two, params));
    }
    cases.push(case(&[], json!({"min": "0"})));
    cases
}

/// Cases for a `max-length` port; `prefix` is the rule's name (params are addressed as
/// `NAME.max_tokens`). Candidates' texts vary in length; the policy is argmax.
pub fn max_length(prefix: &str) -> Vec<Value> {
    let texts = ["", "one", "two words", "a b c d e f g h", "  spaced   out  ", "tab\tand\nnewline here"];
    let candidates: Vec<Value> = texts.iter().map(|t| json!({"text": t, "score": 1})).collect();
    let key = format!("{prefix}.max_tokens");
    let mut cases = Vec::new();
    for max in ["0", "1", "2", "5", "+3", "18446744073709551615", "-1", "x", "1.5"] {
        cases.push(json!({"messages": [{"role": "user", "content": "q"}], "candidates": candidates, "params": {key.as_str(): max}}));
    }
    cases.push(json!({"messages": [{"role": "user", "content": "q"}], "candidates": candidates}));
    cases
}
