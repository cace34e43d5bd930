//! `config.json` of a Llama-3.x checkpoint: the architecture numbers the model code needs.
//!
//! Accepts both layouts in circulation: `rope_theta` + `rope_scaling` (released Llama-3.x and
//! Nemotron checkpoints) and transformers-5's `rope_parameters`. Anything the model code does
//! not implement (biases, other rope types, other architectures) is refused by name.

use std::path::Path;

use serde_json::Value;

use crate::error::{EngineError, Result, bad};

/// Which head produces the reward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// `LlamaForCausalLM`: the logit of one vocabulary token (`lm_head` row, or the tied
    /// embedding row).
    LmHeadRow {
        /// Whether `lm_head` shares the embedding matrix.
        tied: bool,
    },
    /// `LlamaForSequenceClassification` with one label: the `score` head.
    Score,
}

/// Llama-3 rope frequency scaling (`rope_type: llama3`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Llama3Scaling {
    /// `factor`.
    pub factor: f32,
    /// `low_freq_factor`.
    pub low_freq_factor: f32,
    /// `high_freq_factor`.
    pub high_freq_factor: f32,
    /// `original_max_position_embeddings`.
    pub original_max_position_embeddings: f32,
}

/// Architecture of the checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (GQA).
    pub num_kv_heads: usize,
    /// Per-head width (`head_dim`, else `hidden_size / num_heads`).
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Rope base.
    pub rope_theta: f32,
    /// Llama-3 rope scaling, if any.
    pub rope_scaling: Option<Llama3Scaling>,
    /// Longest supported sequence.
    pub max_position_embeddings: usize,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Reward head.
    pub head: Head,
}

fn field<'a>(path: &Path, v: &'a Value, key: &str) -> Result<&'a Value> {
    v.get(key).filter(|x| !x.is_null()).ok_or_else(|| bad(path, format!("missing `{key}`")))
}

fn usize_field(path: &Path, v: &Value, key: &str) -> Result<usize> {
    field(path, v, key)?
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| bad(path, format!("`{key}` must be a positive integer")))
}

fn f64_field(path: &Path, v: &Value, key: &str) -> Result<f64> {
    field(path, v, key)?.as_f64().ok_or_else(|| bad(path, format!("`{key}` must be a number")))
}

impl ModelConfig {
    /// Reads and validates `config.json`.
    ///
    /// # Errors
    /// A missing file, malformed JSON, missing or inconsistent fields, unsupported features.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| EngineError::Io { path: path.into(), error })?;
        let v: Value = serde_json::from_str(&text).map_err(|e| bad(path, format!("invalid JSON: {e}")))?;
        Self::from_json(path, &v)
    }

    fn from_json(path: &Path, v: &Value) -> Result<Self> {
        let unsupported = |message: String| EngineError::Unsupported { path: path.into(), message };
        let arch = v.get("architectures").and_then(|a| a.get(0)).and_then(Value::as_str).unwrap_or("LlamaForCausalLM");
        let tied = v.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(false);
        let head = match arch {
            "LlamaForCausalLM" => Head::LmHeadRow { tied },
            "LlamaForSequenceClassification" => {
                let labels = v
                    .get("num_labels")
                    .and_then(Value::as_u64)
                    .or_else(|| v.get("id2label").and_then(Value::as_object).map(|m| m.len() as u64));
                if labels.unwrap_or(1) != 1 {
                    return Err(unsupported(format!("{arch} with {} labels (need 1)", labels.unwrap_or(0))));
                }
                Head::Score
            }
            other => {
                return Err(unsupported(format!(
                    "architecture `{other}` (supported: LlamaForCausalLM, LlamaForSequenceClassification)"
                )));
            }
        };
        for flag in ["attention_bias", "mlp_bias"] {
            if v.get(flag).and_then(Value::as_bool).unwrap_or(false) {
                return Err(unsupported(format!("`{flag}: true`")));
            }
        }
        if let Some(act) = v.get("hidden_act").and_then(Value::as_str)
            && act != "silu"
        {
            return Err(unsupported(format!("hidden_act `{act}` (need silu)")));
        }
        let hidden_size = usize_field(path, v, "hidden_size")?;
        let num_heads = usize_field(path, v, "num_attention_heads")?;
        let num_kv_heads = match v.get("num_key_value_heads") {
            Some(x) if !x.is_null() => usize_field(path, v, "num_key_value_heads")?,
            _ => num_heads,
        };
        if num_heads % num_kv_heads != 0 {
            return Err(bad(
                path,
                format!("num_attention_heads {num_heads} is not a multiple of num_key_value_heads {num_kv_heads}"),
            ));
        }
        let head_dim = match v.get("head_dim") {
            Some(x) if !x.is_null() => usize_field(path, v, "head_dim")?,
            _ => {
                if hidden_size % num_heads != 0 {
                    return Err(bad(
                        path,
                        "hidden_size is not a multiple of num_attention_heads and no head_dim is given",
                    ));
                }
                hidden_size / num_heads
            }
        };
        if head_dim % 2 != 0 {
            return Err(bad(path, format!("head_dim {head_dim} must be even for rotary embeddings")));
        }
        // transformers 5 nests rope settings in `rope_parameters`; older files use top-level keys.
        let rope = v.get("rope_parameters").filter(|r| r.is_object());
        let rope_theta = match rope.and_then(|r| r.get("rope_theta")).or_else(|| v.get("rope_theta")) {
            Some(t) => t.as_f64().ok_or_else(|| bad(path, "`rope_theta` must be a number"))? as f32,
            None => 10_000.0,
        };
        let scaling = rope.or_else(|| v.get("rope_scaling")).filter(|s| s.is_object());
        let rope_scaling = match scaling {
            None => None,
            Some(s) => {
                let kind = s.get("rope_type").or_else(|| s.get("type")).and_then(Value::as_str).unwrap_or("default");
                match kind {
                    "default" => None,
                    "llama3" => Some(Llama3Scaling {
                        factor: f64_field(path, s, "factor")? as f32,
                        low_freq_factor: f64_field(path, s, "low_freq_factor")? as f32,
                        high_freq_factor: f64_field(path, s, "high_freq_factor")? as f32,
                        original_max_position_embeddings: f64_field(path, s, "original_max_position_embeddings")?
                            as f32,
                    }),
                    other => return Err(unsupported(format!("rope_type `{other}` (supported: default, llama3)"))),
                }
            }
        };
        if let Some(s) = rope_scaling
            && s.high_freq_factor <= s.low_freq_factor
        {
            return Err(bad(path, "rope_scaling: high_freq_factor must exceed low_freq_factor"));
        }
        Ok(Self {
            hidden_size,
            intermediate_size: usize_field(path, v, "intermediate_size")?,
            num_layers: usize_field(path, v, "num_hidden_layers")?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: f64_field(path, v, "rms_norm_eps")?,
            rope_theta,
            rope_scaling,
            max_position_embeddings: usize_field(path, v, "max_position_embeddings")?,
            vocab_size: usize_field(path, v, "vocab_size")?,
            head,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ModelConfig> {
        ModelConfig::from_json(Path::new("config.json"), &serde_json::from_str(json).expect("json"))
    }

    const BASE: &str = r#""hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,
        "rms_norm_eps":1e-5,"max_position_embeddings":128,"vocab_size":100"#;

    #[test]
    fn defaults_and_both_rope_layouts() {
        let c = parse(&format!("{{{BASE}}}")).expect("minimal");
        assert_eq!((c.num_kv_heads, c.head_dim, c.rope_theta, c.rope_scaling), (4, 16, 10_000.0, None));
        assert_eq!(c.head, Head::LmHeadRow { tied: false });
        let legacy = parse(&format!(
            r#"{{{BASE},"rope_theta":5e5,"rope_scaling":{{"rope_type":"llama3","factor":8,
            "low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":64}}}}"#
        ))
        .expect("legacy");
        let v5 = parse(&format!(
            r#"{{{BASE},"rope_parameters":{{"rope_theta":5e5,"rope_type":"llama3","factor":8,
            "low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":64}}}}"#
        ))
        .expect("v5");
        assert_eq!(legacy, v5);
        assert_eq!(legacy.rope_scaling.map(|s| s.factor), Some(8.0));
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse(r#"{"hidden_size":64}"#).expect_err("missing").to_string();
        assert!(e.contains("config.json") && e.contains("missing `num_attention_heads`"), "{e}");
        let e = parse(&format!(r#"{{{BASE},"num_key_value_heads":3}}"#)).expect_err("gqa").to_string();
        assert!(e.contains("multiple"), "{e}");
        let e = parse(&format!(r#"{{{BASE},"rope_scaling":{{"rope_type":"yarn"}}}}"#)).expect_err("yarn").to_string();
        assert!(e.contains("yarn"), "{e}");
        let e = parse(&format!(r#"{{{BASE},"architectures":["MistralForCausalLM"]}}"#)).expect_err("arch").to_string();
        assert!(e.contains("MistralForCausalLM"), "{e}");
        let e = parse(&format!(r#"{{{BASE},"attention_bias":true}}"#)).expect_err("bias").to_string();
        assert!(e.contains("attention_bias"), "{e}");
    }
}
