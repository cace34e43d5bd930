//! Fidelity of the CPU bf16 path (and of f16 on candle's kernels) (oneDNN, bf16 weights and matmul inputs, f32 activations)
//! against the f32 goldens, measured by the yardstick of the reference's own bf16 scores
//! (`goldens-bf16.json`: the model card's code with the model in bfloat16). candle's all-bf16
//! path (what CUDA runs) is not held to this yet: on CPU it is 1.3–1.7× transformers' error,
//! because its softmax and residual stream stay in bf16.
//!
//! Criterion (the CPU engine issue): per fixture, the max and the median of |arbiter bf16 −
//! f32 golden| are at most 1.5× those of |transformers bf16 − f32 golden|, and the argmax
//! per conversation agrees with the f32 goldens wherever their top-2 margin exceeds the
//! max error.

use arbiter_engine::{BackendChoice, DtypeChoice, EngineOptions, LlamaRewardModel, Message};
use serde_json::Value;

use crate::engine::{fixtures, goldens, load_if_available};

fn bf16_goldens() -> Value {
    let text = std::fs::read_to_string(fixtures().join("goldens-bf16.json")).expect("goldens-bf16.json");
    serde_json::from_str(&text).expect("goldens-bf16 parse")
}

fn max_and_median(mut errors: Vec<f32>) -> (f32, f32) {
    errors.sort_by(f32::total_cmp);
    (errors.last().copied().unwrap_or(0.0), errors[errors.len() / 2])
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i)
}

/// `name` in `dtype` on `backend`: errors at most `factor` × transformers' bf16 errors.
fn check(name: &str, backend: BackendChoice, dtype: DtypeChoice, factor: f32) {
    let options = EngineOptions { dtype, backend, ..EngineOptions::default() };
    let Some(model) = load_if_available(name, options) else { return };
    let (g, gb) = (goldens(), bf16_goldens());
    let cases = g["fixtures"][name].as_array().expect("cases");
    let theirs = gb["fixtures"][name].as_array().expect("bf16 cases");
    let (mut ours_err, mut theirs_err, mut per_case) = (Vec::new(), Vec::new(), Vec::new());
    for (case, their_scores) in cases.iter().zip(theirs) {
        let msgs: Vec<Message> = serde_json::from_value(case["messages"].clone()).expect("messages");
        let responses: Vec<String> = serde_json::from_value(case["responses"].clone()).expect("responses");
        let want: Vec<f32> = serde_json::from_value(case["scores"].clone()).expect("scores");
        let their: Vec<f32> = serde_json::from_value(their_scores.clone()).expect("bf16 scores");
        let got = model.score_with_stats(&msgs, &responses).expect("score").0;
        ours_err.extend(got.iter().zip(&want).map(|(a, b)| (a - b).abs()));
        theirs_err.extend(their.iter().zip(&want).map(|(a, b)| (a - b).abs()));
        per_case.push((got, want));
    }
    let (ours, reference) = (max_and_median(ours_err), max_and_median(theirs_err));
    eprintln!(
        "{name} on {}: max/median |{dtype:?} − f32 golden| {ours:?}, transformers bf16 {reference:?}",
        model.compute_info()
    );
    assert!(ours.0 <= factor * reference.0, "{name}: max error {} > {factor} × transformers' {}", ours.0, reference.0);
    assert!(
        ours.1 <= factor * reference.1,
        "{name}: median error {} > {factor} × transformers' {}",
        ours.1,
        reference.1
    );
    for (got, want) in per_case {
        let mut sorted = want.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        if sorted.len() >= 2 && sorted[0] - sorted[1] > ours.0 {
            assert_eq!(argmax(&got), argmax(&want), "{name}: argmax differs with f32 margin {}", sorted[0] - sorted[1]);
        }
    }
}

#[test]
fn onednn_bf16_is_at_least_as_faithful_as_transformers_bf16() {
    for name in ["tiny-llama-f32", "tiny-llama-bf16", "tiny-seqcls"] {
        check(name, BackendChoice::OneDnn, DtypeChoice::Bf16, 1.5);
    }
}

/// f16 (for GPUs without bf16) keeps 3 more mantissa bits than bf16, so it must do at least as
/// well as transformers' bf16; run on candle's kernels, the same code the CUDA path runs.
#[test]
fn f16_on_candle_is_at_least_as_faithful_as_transformers_bf16() {
    for name in ["tiny-llama-f32", "tiny-llama-bf16", "tiny-seqcls"] {
        check(name, BackendChoice::Candle, DtypeChoice::F16, 1.0);
    }
}

#[test]
fn auto_dtype_on_a_bf16_checkpoint_follows_the_cpu() {
    let model = LlamaRewardModel::load(&fixtures().join("tiny-llama-bf16"), EngineOptions::default()).expect("load");
    let info = model.compute_info();
    // bf16 only where oneDNN runs and reports native bf16; f32 (with a note saying why) elsewhere.
    let native = info.backend == "onednn" && matches!(info.isa.as_str(), "avx512_core_bf16" | "avx512_core_amx");
    assert_eq!(info.weights, if native { candle_core::DType::BF16 } else { candle_core::DType::F32 }, "{info}");
    if !native {
        assert!(info.note.contains("computed in f32"), "{info}");
    }
    let f32_model = LlamaRewardModel::load(&fixtures().join("tiny-llama-f32"), EngineOptions::default()).expect("load");
    assert_eq!(f32_model.compute_info().weights, candle_core::DType::F32, "an f32 checkpoint stays f32");
}
