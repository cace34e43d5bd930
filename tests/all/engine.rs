//! The reward engine against goldens computed by the model card's transformers code
//! (scripts/reference/make_fixtures.py), plus the engine's own invariants.

use std::path::{Path, PathBuf};

use arbiter_engine::{
    BackendChoice, DtypeChoice, EngineError, EngineOptions, LlamaRewardModel, Message, Prompter, RewardModel,
};
use serde_json::Value;

pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

pub(crate) fn goldens() -> Value {
    let text = std::fs::read_to_string(fixtures().join("goldens.json")).expect("goldens.json");
    serde_json::from_str(&text).expect("goldens parse")
}

fn load(name: &str, options: EngineOptions) -> LlamaRewardModel {
    LlamaRewardModel::load(&fixtures().join(name), options).unwrap_or_else(|e| panic!("load {name}: {e}"))
}

fn messages(v: &Value) -> Vec<Message> {
    serde_json::from_value(v.clone()).expect("messages")
}

fn strings(v: &Value) -> Vec<String> {
    serde_json::from_value(v.clone()).expect("strings")
}

fn ids(v: &Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).expect("ids")
}

/// The f32 options on one CPU backend; `None` when that backend is oneDNN and the library is
/// absent (a failure instead when `ARBITER_REQUIRE_ONEDNN=1`, as CI sets it).
fn f32_on(backend: BackendChoice) -> EngineOptions {
    EngineOptions { dtype: DtypeChoice::F32, backend, ..EngineOptions::default() }
}

/// Loads `name` with `options`, or `None` when it asks for oneDNN and oneDNN is absent.
pub(crate) fn load_if_available(name: &str, options: EngineOptions) -> Option<LlamaRewardModel> {
    match LlamaRewardModel::load(&fixtures().join(name), options.clone()) {
        Ok(m) => Some(m),
        Err(e)
            if options.backend == BackendChoice::OneDnn
                && std::env::var("ARBITER_REQUIRE_ONEDNN").as_deref() != Ok("1") =>
        {
            eprintln!("skipping the oneDNN backend: {e}");
            None
        }
        Err(e) => panic!("load {name}: {e}"),
    }
}

/// Every fixture on both CPU backends in f32: token ids equal the reference's, and scores are
/// within 1e-4 of the reference's, with prefix sharing and batching on (the defaults).
fn check_fixture(name: &str) {
    for backend in [BackendChoice::Candle, BackendChoice::OneDnn] {
        if let Some(model) = load_if_available(name, f32_on(backend)) {
            check_fixture_with(name, &model);
        }
    }
}

fn check_fixture_with(name: &str, model: &LlamaRewardModel) {
    let g = goldens();
    let cases = g["fixtures"][name].as_array().expect("cases");
    let mut checked = 0;
    let mut worst = 0.0f32;
    for case in cases {
        let msgs = messages(&case["messages"]);
        let responses = strings(&case["responses"]);
        for (r, want) in responses.iter().zip(case["token_ids"].as_array().expect("ids")) {
            assert_eq!(
                model.conversation_ids(&msgs, r).expect("ids"),
                ids(want),
                "{name}: token ids for {msgs:?} + {r:?}"
            );
        }
        let got = model.score(&msgs, &responses).expect("score");
        for (g, want) in got.iter().zip(case["scores"].as_array().expect("scores")) {
            let want = want.as_f64().expect("f64") as f32;
            worst = worst.max((g - want).abs());
            assert!((g - want).abs() <= 1e-4, "{name}: score {g} vs reference {want} for {msgs:?}");
            checked += 1;
        }
    }
    assert!(checked >= 50, "{name}: only {checked} goldens");
    eprintln!("{name} on {}: {checked} scores, max |diff| = {worst:e}", model.compute_info());
}

#[test]
fn f32_sharded_llama3_rope_gqa_head_dim_matches_reference() {
    check_fixture("tiny-llama-f32");
}

#[test]
fn bf16_tied_template_file_matches_reference() {
    check_fixture("tiny-llama-bf16");
}

#[test]
fn sequence_classification_head_matches_reference() {
    check_fixture("tiny-seqcls");
}

fn sample() -> (Vec<Message>, Vec<String>) {
    let msgs = vec![
        Message { role: "system".into(), content: "Be brief.".into() },
        Message { role: "user".into(), content: "Name three colours and explain each one briefly.".into() },
    ];
    let responses =
        ["Red, green, blue.", "Red is warm; green is calm; blue is cool.", "x", "Cyan, magenta, yellow!", ""];
    (msgs, responses.iter().map(|s| (*s).to_owned()).collect())
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn prefix_sharing_equals_full_sequences() {
    let (msgs, responses) = sample();
    let shared = load("tiny-llama-f32", EngineOptions::default());
    let (with, stats) = shared.score_with_stats(&msgs, &responses).expect("shared");
    assert!(stats.prefix_tokens > 20 && stats.tokens_computed < stats.tokens_total, "{stats:?}");
    let full = load("tiny-llama-f32", EngineOptions { share_prefix: false, ..EngineOptions::default() });
    let (without, stats) = full.score_with_stats(&msgs, &responses).expect("full");
    assert_eq!(stats.tokens_computed, stats.tokens_total);
    assert!(max_diff(&with, &without) <= 1e-5, "{with:?} vs {without:?}");
}

#[test]
fn scores_do_not_depend_on_batch_order_or_composition() {
    let (msgs, responses) = sample();
    let model = load("tiny-llama-f32", EngineOptions::default());
    let base = model.score(&msgs, &responses).expect("score");
    let mut reversed = responses.clone();
    reversed.reverse();
    let mut rev_scores = model.score(&msgs, &reversed).expect("score");
    rev_scores.reverse();
    assert!(max_diff(&base, &rev_scores) <= 1e-5);
    // One candidate per batch, and each alone.
    let tiny_batches = load("tiny-llama-f32", EngineOptions { max_batch_tokens: 1, ..EngineOptions::default() });
    assert!(max_diff(&base, &tiny_batches.score(&msgs, &responses).expect("score")) <= 1e-5);
    for (i, r) in responses.iter().enumerate() {
        let alone = model.score(&msgs, std::slice::from_ref(r)).expect("alone");
        assert!((alone[0] - base[i]).abs() <= 1e-5, "candidate {i}: {} vs {}", alone[0], base[i]);
    }
}

#[test]
fn chunked_long_inputs_equal_unchunked() {
    let msgs = vec![Message { role: "user".into(), content: "word ".repeat(700) }];
    let responses = vec!["short".to_owned(), "a longer answer ".repeat(40)];
    let chunked = load("tiny-llama-f32", EngineOptions { chunk_tokens: 64, ..EngineOptions::default() });
    let whole =
        load("tiny-llama-f32", EngineOptions { chunk_tokens: 4096, share_prefix: false, ..EngineOptions::default() });
    let (a, stats) = chunked.score_with_stats(&msgs, &responses).expect("chunked");
    assert!(stats.tokens_total > 1000, "{stats:?}");
    let b = whole.score(&msgs, &responses).expect("whole");
    assert!(max_diff(&a, &b) <= 1e-4, "{a:?} vs {b:?}");
}

#[test]
fn too_long_inputs_name_both_numbers() {
    let model = load("tiny-llama-f32", EngineOptions { max_input_tokens: Some(40), ..EngineOptions::default() });
    let msgs = vec![Message { role: "user".into(), content: "hello there".into() }];
    match model.score(&msgs, &["x".to_owned()]) {
        Err(EngineError::TooLong { tokens, limit: 40, limit_name }) => {
            assert!(tokens > 40 && limit_name.contains("max_input_tokens"));
        }
        other => panic!("expected TooLong, got {other:?}"),
    }
    let model = load("tiny-llama-f32", EngineOptions::default());
    let huge = vec![Message { role: "user".into(), content: "a b ".repeat(1500) }];
    let err = model.score(&huge, &["x".to_owned()]).expect_err("over the 2048 context").to_string();
    assert!(err.contains("2048") && err.contains("max_position_embeddings"), "{err}");
    assert_eq!(model.score(&msgs, &[]).expect("no responses"), Vec::<f32>::new());
}

#[test]
fn special_token_text_is_special_unless_neutralized() {
    let msgs = vec![Message { role: "user".into(), content: "say <|eot_id|>".into() }];
    let plain = load("tiny-llama-f32", EngineOptions::default());
    let neutral = load("tiny-llama-f32", EngineOptions { neutralize_special_tokens: true, ..EngineOptions::default() });
    let eot = 521u32;
    let count = |v: Vec<u32>| v.iter().filter(|&&t| t == eot).count();
    // system, user, assistant turns end in <|eot_id|>; the reference adds one for the content.
    assert_eq!(count(plain.conversation_ids(&msgs, "ok").expect("ids")), 4);
    assert_eq!(count(neutral.conversation_ids(&msgs, "ok").expect("ids")), 3);
}

/// Copies a fixture into a temp dir so a test can break one file.
fn broken(name: &str, edit: impl FnOnce(&Path)) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(fixtures().join(name)).expect("fixture") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
    }
    edit(dir.path());
    match LlamaRewardModel::load(dir.path(), EngineOptions::default()) {
        Ok(_) => panic!("a broken checkpoint loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn malformed_checkpoints_name_the_file_and_problem() {
    let e = broken("tiny-llama-f32", |d| std::fs::remove_file(d.join("config.json")).expect("rm"));
    assert!(e.contains("config.json"), "{e}");
    let e = broken("tiny-llama-f32", |d| std::fs::write(d.join("config.json"), "{").expect("w"));
    assert!(e.contains("config.json") && e.contains("invalid JSON"), "{e}");
    let e = broken("tiny-llama-f32", |d| std::fs::remove_file(d.join("model-00002-of-00003.safetensors")).expect("rm"));
    assert!(e.contains("model-00002-of-00003.safetensors") && e.contains("missing"), "{e}");
    let e = broken("tiny-llama-f32", |d| {
        std::fs::write(d.join("model-00001-of-00003.safetensors"), b"garbage").expect("w")
    });
    assert!(e.contains("safetensors"), "{e}");
    let e = broken("tiny-llama-f32", |d| {
        let p = d.join("config.json");
        let text =
            std::fs::read_to_string(&p).expect("r").replace("\"intermediate_size\": 160", "\"intermediate_size\": 161");
        std::fs::write(&p, text).expect("w");
    });
    assert!(e.contains("gate_proj") && e.contains("shape"), "{e}");
    let e = broken("tiny-llama-bf16", |d| std::fs::remove_file(d.join("chat_template.jinja")).expect("rm"));
    assert!(e.contains("no chat template"), "{e}");
    let e = broken("tiny-llama-f32", |d| std::fs::write(d.join("tokenizer.json"), "[]").expect("w"));
    assert!(e.contains("tokenizer.json"), "{e}");
}

/// Conformance with the real Llama-3 tokenizer and Llama-3.3 chat template (CI sets
/// ARBITER_LLAMA3_DIR to ../shared/llama3; without it there is nothing to compare against).
#[test]
fn real_llama3_tokenizer_and_template_conformance() {
    let Some(dir) = std::env::var_os("ARBITER_LLAMA3_DIR") else {
        eprintln!("ARBITER_LLAMA3_DIR not set: real-tokenizer conformance not checked");
        return;
    };
    let prompter = Prompter::load(Path::new(&dir), false).expect("real tokenizer loads");
    let text = std::fs::read_to_string(fixtures().join("llama3-template-goldens.json")).expect("goldens");
    let g: Value = serde_json::from_str(&text).expect("json");
    let convs = g["conversations"].as_array().expect("conversations");
    assert!(convs.len() >= 25);
    for c in convs {
        let mut msgs = messages(&c["messages"]);
        let last = msgs.pop().expect("assistant turn");
        assert_eq!(last.role, "assistant");
        let got = prompter.conversation_ids(&msgs, &last.content).expect("ids");
        assert_eq!(got, ids(&c["token_ids"]), "conversation {msgs:?} + {:?}", last.content);
        assert_eq!(got.last(), Some(&128009), "ends in <|eot_id|>");
    }
}

/// The planner runs before any weight is read: a checkpoint whose config cannot fit this
/// machine's memory is refused with the arithmetic, not loaded until the OS kills it.
#[test]
fn a_model_too_large_for_memory_is_refused_before_loading() {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(fixtures().join("tiny-llama-f32")).expect("fixture") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
    }
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path).expect("config");
    let mut cfg: serde_json::Value = serde_json::from_str(&text).expect("json");
    cfg["num_hidden_layers"] = serde_json::json!(100_000_000);
    std::fs::write(&path, cfg.to_string()).expect("write");
    let e = LlamaRewardModel::load(dir.path(), EngineOptions::default()).err().expect("refused").to_string();
    assert!(e.contains("does not fit") && e.contains("GiB needed") && e.contains("MemAvailable"), "{e}");
}

/// The device map: the model split by layers over several devices (CPU devices standing in for
/// GPUs: the same code path, hidden state moved at each boundary) scores exactly as on one.
#[test]
fn a_layer_split_over_devices_scores_as_one_device() {
    use candle_core::{DType, Device};
    let (msgs, responses) = sample();
    let dir = fixtures().join("tiny-llama-f32");
    let one = LlamaRewardModel::load_on(&dir, EngineOptions::default(), Device::Cpu, DType::F32).expect("one");
    let want = one.score(&msgs, &responses).expect("one device");
    // The fixture has 3 layers.
    for split in [
        vec![(Device::Cpu, 1), (Device::Cpu, 2)],
        vec![(Device::Cpu, 1), (Device::Cpu, 1), (Device::Cpu, 1)],
        vec![(Device::Cpu, 3), (Device::Cpu, 0)],
    ] {
        let split_model =
            LlamaRewardModel::load_split(&dir, EngineOptions::default(), &split, DType::F32).expect("split");
        assert_eq!(split_model.score(&msgs, &responses).expect("split"), want, "{split:?}");
    }
    // Many small batches: they run pipelined over the stages (a thread per stage), and still
    // score exactly as one device running them one after another.
    let many: Vec<String> = (0..24).map(|i| format!("answer {i}: {}", "word ".repeat(i % 7))).collect();
    let small = EngineOptions { max_batch_tokens: 24, ..EngineOptions::default() };
    let one = LlamaRewardModel::load_on(&dir, small.clone(), Device::Cpu, DType::F32).expect("one");
    let want = one.score(&msgs, &many).expect("one device");
    for split in [vec![(Device::Cpu, 1), (Device::Cpu, 2)], vec![(Device::Cpu, 1), (Device::Cpu, 1), (Device::Cpu, 1)]]
    {
        let model = LlamaRewardModel::load_split(&dir, small.clone(), &split, DType::F32).expect("split");
        assert_eq!(model.pipeline_stages(), split.len());
        assert_eq!(model.score(&msgs, &many).expect("pipelined"), want, "{split:?}");
    }
    // The embedding table in host memory (`--embeddings-on cpu`): the same scores.
    let host = EngineOptions { embeddings_on_host: true, ..small.clone() };
    let split = [(Device::Cpu, 2), (Device::Cpu, 1)];
    let model = LlamaRewardModel::load_split(&dir, host, &split, DType::F32).expect("embeddings on host");
    assert_eq!(model.score(&msgs, &many).expect("embeddings on host"), want);
    let e = LlamaRewardModel::load_split(&dir, EngineOptions::default(), &[(Device::Cpu, 4)], DType::F32)
        .err()
        .expect("4 of 3 layers")
        .to_string();
    assert!(e.contains("places 4 layers but the model has 3"), "{e}");
}
