//! The built-in demo model: a tiny deterministic random-weight Llama, written at start-up to
//! a private temp directory and loaded through the normal checkpoint loader, so a new user
//! can try every route with no download. Its scores are not meaningful, and every surface
//! says so ([`DEMO_LABEL`]).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::api::EngineOptions;
use crate::engine::LlamaRewardModel;
use crate::error::{EngineError, Result};

/// How the demo model is labelled in logs, `/info` and responses.
pub const DEMO_LABEL: &str = "demo (random weights: scores are not meaningful)";

/// The repository's own tiny byte-level BPE tokenizer (scripts/reference/make_fixtures.py).
const TOKENIZER: &str = include_str!("../../../tests/fixtures/tiny-llama-f32/tokenizer.json");
/// The repository's own Llama-3.3-format chat template.
const TEMPLATE: &str = include_str!("../../../scripts/reference/fixture_template.jinja");

const HIDDEN: usize = 64;
const LAYERS: usize = 2;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 16;
const INTER: usize = 128;
const VOCAB: usize = 768;

/// SplitMix64 → uniform(-a, a): deterministic weights on every machine.
fn weights(seed: u64, n: usize, a: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            let u = ((z ^ (z >> 31)) >> 11) as f32 / (1u64 << 53) as f32;
            (u * 2.0 - 1.0) * a
        })
        .collect()
}

/// Writes the demo checkpoint into `dir` and loads it.
///
/// # Errors
/// Files that cannot be written into `dir`, and the loader's own errors.
pub fn load(dir: &Path, options: EngineOptions) -> Result<LlamaRewardModel> {
    let io = |what: &'static str| move |error| EngineError::Io { path: dir.join(what), error };
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "hidden_size": HIDDEN, "intermediate_size": INTER,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 8192,
        "vocab_size": VOCAB, "tie_word_embeddings": false, "hidden_act": "silu"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).map_err(io("config.json"))?;
    std::fs::write(dir.join("tokenizer.json"), TOKENIZER).map_err(io("tokenizer.json"))?;
    let tok_config =
        serde_json::json!({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": TEMPLATE});
    std::fs::write(dir.join("tokenizer_config.json"), tok_config.to_string()).map_err(io("tokenizer_config.json"))?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut seed = 1u64;
    let mut add = |name: String, shape: &[usize], scale: f32| -> Result<()> {
        seed += 1;
        let n = shape.iter().product();
        let data = if scale == 0.0 { vec![1.0f32; n] } else { weights(seed, n, scale) };
        tensors.insert(name, Tensor::from_vec(data, shape, &Device::Cpu)?);
        Ok(())
    };
    add("model.embed_tokens.weight".into(), &[VOCAB, HIDDEN], 0.5)?;
    add("lm_head.weight".into(), &[VOCAB, HIDDEN], 0.5)?;
    add("model.norm.weight".into(), &[HIDDEN], 0.0)?;
    for l in 0..LAYERS {
        let p = |s: &str| format!("model.layers.{l}.{s}");
        add(p("input_layernorm.weight"), &[HIDDEN], 0.0)?;
        add(p("post_attention_layernorm.weight"), &[HIDDEN], 0.0)?;
        add(p("self_attn.q_proj.weight"), &[HEADS * HEAD_DIM, HIDDEN], 0.2)?;
        add(p("self_attn.k_proj.weight"), &[KV_HEADS * HEAD_DIM, HIDDEN], 0.2)?;
        add(p("self_attn.v_proj.weight"), &[KV_HEADS * HEAD_DIM, HIDDEN], 0.2)?;
        add(p("self_attn.o_proj.weight"), &[HIDDEN, HEADS * HEAD_DIM], 0.2)?;
        add(p("mlp.gate_proj.weight"), &[INTER, HIDDEN], 0.2)?;
        add(p("mlp.up_proj.weight"), &[INTER, HIDDEN], 0.2)?;
        add(p("mlp.down_proj.weight"), &[HIDDEN, INTER], 0.2)?;
    }
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    LlamaRewardModel::load(dir, options)
}
