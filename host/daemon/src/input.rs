//! The JSON body of a selection (CLI `--input` and, later, HTTP `/v1/select`) and its answer.
//!
//! Scores may be JSON numbers or the strings `"NaN"`, `"inf"`, `"+inf"`, `"-inf"` (JSON has no
//! literal for them), and are written back the same way. Parameter values may be strings,
//! numbers or booleans; plugins receive them as strings.

use std::collections::BTreeMap;

use arbiter_plugins::Message;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One candidate of the input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidateInput {
    /// Response text.
    pub text: String,
    /// Known reward score, if any.
    #[serde(default, deserialize_with = "de_score")]
    pub score: Option<f32>,
}

/// One conversation turn of the input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageInput {
    /// Role.
    pub role: String,
    /// Content.
    pub content: String,
}

/// A selection request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectInput {
    /// The conversation.
    #[serde(default)]
    pub messages: Vec<MessageInput>,
    /// Candidates with optional scores.
    #[serde(default)]
    pub candidates: Option<Vec<CandidateInput>>,
    /// Alternative to `candidates`: bare response texts, unscored.
    #[serde(default)]
    pub responses: Option<Vec<String>>,
    /// Policy and rule parameters (`rule-name.key` addresses a rule).
    #[serde(default)]
    pub params: BTreeMap<String, ParamValue>,
    /// Seed for the policy's randomness.
    #[serde(default)]
    pub seed: u64,
    /// Policy name or path (the CLI's `--policy` wins).
    #[serde(default)]
    pub policy: Option<String>,
    /// Rule names or paths (added to the CLI's `--rule`s).
    #[serde(default)]
    pub rules: Vec<String>,
}

/// A parameter value as given in JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// A string, passed as is.
    Text(String),
    /// A number, passed in its JSON spelling.
    Number(serde_json::Number),
    /// A boolean, passed as `true`/`false`.
    Bool(bool),
}

impl ParamValue {
    /// The string a plugin receives.
    pub fn into_string(self) -> String {
        match self {
            ParamValue::Text(s) => s,
            ParamValue::Number(n) => n.to_string(),
            ParamValue::Bool(b) => b.to_string(),
        }
    }
}

/// A request body that cannot be used, with the reason (serde's message names the field
/// and the line/column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

impl SelectInput {
    /// Parses a body, naming the line and column of a JSON error.
    ///
    /// # Errors
    /// Malformed JSON, unknown fields, wrong types, both/neither of candidates/responses.
    pub fn parse(text: &str) -> Result<Self, InputError> {
        let input: SelectInput = serde_json::from_str(text).map_err(|e| InputError(e.to_string()))?;
        if input.candidates.is_some() && input.responses.is_some() {
            return Err(InputError("give either `candidates` or `responses`, not both".into()));
        }
        if input.candidates.is_none() && input.responses.is_none() {
            return Err(InputError("missing field `candidates` (or `responses`)".into()));
        }
        Ok(input)
    }

    /// The conversation as plugin-host messages.
    pub fn conversation(&self) -> Vec<Message> {
        self.messages.iter().map(|m| Message { role: m.role.clone(), content: m.content.clone() }).collect()
    }

    /// Number of candidates, without copying them.
    pub fn candidate_count(&self) -> usize {
        self.candidates.as_ref().map(Vec::len).or(self.responses.as_ref().map(Vec::len)).unwrap_or(0)
    }

    /// Candidates, whichever field gave them.
    pub fn candidate_list(&self) -> Vec<CandidateInput> {
        match (&self.candidates, &self.responses) {
            (Some(c), _) => c.clone(),
            (None, Some(r)) => r.iter().map(|t| CandidateInput { text: t.clone(), score: None }).collect(),
            (None, None) => Vec::new(),
        }
    }
}

fn de_score<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(f64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Num(n)) => Ok(Some(n as f32)),
        Some(Raw::Text(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "nan" => Ok(Some(f32::NAN)),
            "inf" | "+inf" | "infinity" | "+infinity" => Ok(Some(f32::INFINITY)),
            "-inf" | "-infinity" => Ok(Some(f32::NEG_INFINITY)),
            _ => Err(serde::de::Error::custom(format!(
                "score {s:?} is not a number (use a JSON number, \"NaN\", \"inf\" or \"-inf\")"
            ))),
        },
    }
}

/// A score as written in output: a number, or `"NaN"`/`"inf"`/`"-inf"`, or null.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub Option<f32>);

impl Serialize for Score {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_none(),
            Some(v) if v.is_nan() => s.serialize_str("NaN"),
            Some(v) if v == f32::INFINITY => s.serialize_str("inf"),
            Some(v) if v == f32::NEG_INFINITY => s.serialize_str("-inf"),
            Some(v) => s.serialize_f64(shortest(v)),
        }
    }
}

/// The f64 of `v`'s shortest round-trip decimal (`2.9701936`, not `2.97019362449646`): JSON
/// numbers that say what an f32 holds, identically in every output.
pub fn shortest(v: f32) -> f64 {
    format!("{v}").parse().unwrap_or(f64::from(v))
}

/// Scores as JSON the way every route and command prints them (NaN and infinities as strings).
pub fn scores_json(scores: &[f32]) -> serde_json::Value {
    serde_json::Value::Array(scores.iter().map(|&v| serde_json::to_value(Score(Some(v))).unwrap_or_default()).collect())
}

/// Identity of the policy that answered.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyRef {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// sha256 of its wasm.
    pub sha256: String,
}

/// The answer to a selection.
#[derive(Debug, Clone, Serialize)]
pub struct SelectOutput {
    /// Chosen candidate index, or null when the policy abstained.
    pub chosen: Option<u32>,
    /// Candidate indices, best first.
    pub ranking: Vec<u32>,
    /// The policy's explanation.
    pub reason: String,
    /// Which policy answered.
    pub policy: PolicyRef,
    /// Known score per candidate (null if never scored).
    pub scores: Vec<Score>,
    /// Rule features per candidate (empty objects when no rules ran).
    pub features: Vec<BTreeMap<String, Score>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_special_scores_and_params() {
        let input = SelectInput::parse(
            r#"{"messages":[{"role":"user","content":"hi"}],
                "candidates":[{"text":"a","score":1.5},{"text":"b","score":"NaN"},{"text":"c","score":"-inf"},{"text":"d"}],
                "params":{"min":0.5,"fallback":"best","x":true},"seed":7}"#,
        )
        .expect("valid");
        let c = input.candidate_list();
        assert_eq!(c[0].score, Some(1.5));
        assert!(c[1].score.is_some_and(f32::is_nan));
        assert_eq!(c[2].score, Some(f32::NEG_INFINITY));
        assert_eq!(c[3].score, None);
        let params: Vec<(String, String)> =
            input.params.clone().into_iter().map(|(k, v)| (k, v.into_string())).collect();
        assert!(params.contains(&("min".into(), "0.5".into())));
        assert!(params.contains(&("x".into(), "true".into())));
        assert_eq!(input.seed, 7);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = SelectInput::parse(r#"{"candidates":[{"text":"a","score":"high"}]}"#).expect_err("bad score").0;
        assert!(e.contains("high"), "{e}");
        let e = SelectInput::parse(r#"{"candidate":[]}"#).expect_err("typo").0;
        assert!(e.contains("candidate"), "{e}");
        let e = SelectInput::parse(r#"{"messages":[]}"#).expect_err("missing").0;
        assert!(e.contains("candidates"), "{e}");
        let e = SelectInput::parse("{").expect_err("eof").0;
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn writes_special_scores_as_strings() {
        let v =
            serde_json::to_string(&[Score(Some(f32::NAN)), Score(Some(f32::INFINITY)), Score(None), Score(Some(1.5))])
                .expect("serialize");
        assert_eq!(v, r#"["NaN","inf",null,1.5]"#);
    }
}
