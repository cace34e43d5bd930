//! The routes other tools' clients call, each with the literal request shape that client
//! sends, scored by the fixture checkpoint: pre-templated texts must score exactly as the same
//! conversation templated by arbiter.

use std::path::Path;
use std::sync::Arc;

use arbiter_engine::{EngineOptions, LlamaRewardModel, Message, Prompter};
use serde_json::{Value, json};

use super::harness::{Server, get, post};

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-llama-f32")
}

fn start() -> Server {
    let model = Arc::new(LlamaRewardModel::load(&fixture(), EngineOptions::default()).expect("fixture"));
    Server::start(std::time::Duration::ZERO, None, |c| {
        c.model = model;
        c.model_label = "tiny-fixture".into();
    })
}

fn conversation() -> Vec<Message> {
    vec![Message { role: "user".into(), content: "What is the capital of France?".into() }]
}

const RESPONSES: [&str; 2] = ["Paris.", "It is Lyon, I think."];

/// The texts a client that templates for itself sends: `messages + [assistant: r]` rendered.
fn templated() -> Vec<String> {
    let prompter = Prompter::load(&fixture(), false).expect("prompter");
    RESPONSES.iter().map(|r| prompter.render(&conversation(), r).expect("render")).collect()
}

/// Scores from arbiter's own templating, the reference for every route.
fn reference(server: &Server) -> Vec<f64> {
    let body = json!({"messages": conversation(), "responses": RESPONSES});
    let (s, v) = post(server.addr, "/v1/score", &body);
    assert_eq!(s, 200, "{v}");
    v["scores"].as_array().expect("scores").iter().map(|x| x.as_f64().expect("number")).collect()
}

fn close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-6, "{got:?} vs {want:?}");
    }
}

#[test]
fn openrlhf_get_reward_scores_templated_queries() {
    let server = start();
    let want = reference(&server);
    let texts = templated();
    // openrlhf.utils.remote_rm_utils: requests.post(url, json={"query": ..., "prompts": ..., "labels": ...})
    let body = json!({"query": texts, "prompts": ["What is the capital of France?", "What is the capital of France?"],
                      "labels": ["", ""]});
    let (s, v) = post(server.addr, "/get_reward", &body);
    assert_eq!(s, 200, "{v}");
    let rewards: Vec<f64> = v["rewards"].as_array().expect("rewards").iter().filter_map(Value::as_f64).collect();
    close(&rewards, &want);
    assert_eq!(v["scores"], v["rewards"]);
    // The same texts through arbiter's own route.
    let (s, v) = post(server.addr, "/v1/score", &json!({"texts": templated()}));
    assert_eq!(s, 200, "{v}");
    let scores: Vec<f64> = v["scores"].as_array().expect("scores").iter().filter_map(Value::as_f64).collect();
    close(&scores, &want);
    let (s, v) = post(server.addr, "/v1/score", &json!({"texts": templated(), "responses": ["x"]}));
    assert_eq!(s, 400, "{v}");
    server.shutdown().expect("clean shutdown");
}

#[test]
fn vllm_classify_with_input_or_messages() {
    let server = start();
    let want = reference(&server);
    // vLLM's examples/pooling/classify client: {"model": ..., "input": [...]}; raw logits with use_activation=false.
    for path in ["/classify", "/v1/classify"] {
        let body = json!({"model": "tiny-fixture", "input": templated(), "use_activation": false});
        let (s, v) = post(server.addr, path, &body);
        assert_eq!(s, 200, "{path}: {v}");
        assert_eq!(v["object"], "list");
        assert_eq!(v["model"], "tiny-fixture");
        let data = v["data"].as_array().expect("data");
        assert_eq!(data.len(), 2);
        let probs: Vec<f64> = data.iter().map(|d| d["probs"][0].as_f64().expect("prob")).collect();
        close(&probs, &want);
        assert_eq!(data[1]["index"], 1);
        assert_eq!(data[0]["num_classes"], 1);
        assert!(v["usage"]["prompt_tokens"].as_u64().is_some_and(|n| n > 0), "{v}");
    }
    // Chat messages ending in the assistant turn; default activation = sigmoid, as vLLM.
    let mut messages = serde_json::to_value(conversation()).expect("json");
    messages.as_array_mut().expect("list").push(json!({"role": "assistant", "content": RESPONSES[0]}));
    let (s, v) = post(server.addr, "/classify", &json!({"model": "tiny-fixture", "messages": messages}));
    assert_eq!(s, 200, "{v}");
    let p = v["data"][0]["probs"][0].as_f64().expect("prob");
    close(&[p], &[1.0 / (1.0 + (-want[0]).exp())]);
    for (body, needle) in [
        (json!({"input": [[1, 2, 3]]}), "token-id"),
        (json!({"input": "x", "truncate_prompt_tokens": 10}), "truncate"),
        (json!({"input": "x", "messages": messages}), "either"),
        (json!({"model": "m"}), "input"),
    ] {
        let (s, v) = post(server.addr, "/classify", &body);
        assert_eq!(s, 400, "{body}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains(needle)), "{body}: {v}");
    }
    server.shutdown().expect("clean shutdown");
}

#[test]
fn v1_models_names_the_model() {
    let server = start();
    let (s, body) = get(server.addr, "/v1/models");
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], "tiny-fixture");
    assert_eq!(v["data"][0]["object"], "model");
    server.shutdown().expect("clean shutdown");
}

#[test]
fn nim_chat_completions_answer_for_the_served_model() {
    let server = start();
    let want = reference(&server);
    // NVIDIA's reward-model NIM example: an OpenAI client's chat completion with the model name.
    let body = json!({"model": "nvidia/llama-3.3-nemotron-70b-reward",
        "messages": [{"role": "user", "content": "What is the capital of France?"},
                     {"role": "assistant", "content": "Paris."}]});
    let (s, v) = post(server.addr, "/v1/chat/completions", &body);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["model"], "tiny-fixture", "the model that answered, not the one asked for");
    let content = v["choices"][0]["message"]["content"].as_str().expect("content");
    let reward: f64 = content.strip_prefix("reward:").expect("reward:").parse().expect("number");
    // Scored alone rather than in a batch of two: the same model, its float sums partitioned
    // differently (the engine's batch-invariance bound, far below the goldens' 1e-4).
    assert!((reward - want[0]).abs() <= 1e-5, "{reward} vs {}", want[0]);
    // OpenAI content-part arrays carry the same text.
    let parts = json!({"messages": [
        {"role": "user", "content": [{"type": "text", "text": "What is the capital "}, {"type": "text", "text": "of France?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Paris."}]}]});
    let (s, v) = post(server.addr, "/v1/chat/completions", &parts);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], content);
    for (patch, needle) in [
        (json!({"stream": true}), "stream"),
        (json!({"n": 2}), "`n`"),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                             {"role": "assistant", "content": "a"}]}),
            "image_url",
        ),
    ] {
        let mut b = body.clone();
        for (k, val) in patch.as_object().expect("object") {
            b[k] = val.clone();
        }
        let (s, v) = post(server.addr, "/v1/chat/completions", &b);
        assert_eq!(s, 400, "{b}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| e.contains(needle)), "{b}: {v}");
    }
    server.shutdown().expect("clean shutdown");
}
