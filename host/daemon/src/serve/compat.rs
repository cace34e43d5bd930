//! Routes in the shapes other tools' clients already send, so arbiter drops into existing
//! pipelines: NVIDIA NIM's reward chat completions, OpenRLHF's remote reward model
//! (`/get_reward`), vLLM's pooling classifier (`/classify`, `/v1/classify`) and the model list
//! OpenAI-style clients ask for first (`/v1/models`). Each scores through the same engine
//! queue, limits and error shape as `/v1/score`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::api::{admit, check_candidates, field, parse};
use super::error::ApiError;

type Body = Bytes;

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn json_object(body: &Body) -> Result<serde_json::Map<String, Value>, ApiError> {
    match parse::<Value>(body)? {
        Value::Object(o) => Ok(o),
        _ => Err(ApiError::bad_request("the body must be a JSON object")),
    }
}

/// The conversation and the assistant turn to score, from messages that end in it.
fn split_last_assistant(
    mut messages: Vec<arbiter_engine::Message>,
) -> Result<(Vec<arbiter_engine::Message>, String), ApiError> {
    let last = messages.pop().ok_or_else(|| ApiError::bad_request("`messages` is empty"))?;
    if last.role != "assistant" {
        return Err(ApiError::bad_request(format!(
            "the last message must be the assistant turn to score (got role `{}`)",
            last.role
        )));
    }
    Ok((messages, last.content))
}

/// NVIDIA NIM reward-model compatible: the conversation ends in the assistant turn to score;
/// the answer is a chat completion whose content is `reward:<score>`.
pub(super) async fn chat_completions(State(state): State<Arc<AppState>>, body: Body) -> Result<Json<Value>, ApiError> {
    // NIM clients send extra OpenAI fields (temperature, max_tokens, ...): accept and ignore
    // them, except those that would change what the client gets back.
    let mut o = json_object(&body)?;
    if o.get("stream").is_some_and(|v| v.as_bool() == Some(true)) {
        return Err(ApiError::bad_request("`stream: true` is not supported: the reward is one non-streamed answer"));
    }
    if o.get("n").and_then(Value::as_u64).is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request("`n` must be 1: a reward model gives one reward per conversation"));
    }
    if let Some(Value::Array(messages)) = o.get_mut("messages") {
        for m in messages.iter_mut() {
            flatten_content(m)?;
        }
    }
    let (conversation, last) = split_last_assistant(field(&mut o, "messages")?)?;
    let _permit = admit(&state)?;
    let (scores, tokens) = state.engine.score(conversation, vec![last]).await?;
    let reward = scores.first().copied().ok_or_else(|| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "engine_error", "the engine returned no score")
    })?;
    let created = now();
    Ok(Json(json!({
        "id": format!("chatcmpl-{created}-{}", state.request_counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
        "object": "chat.completion",
        "created": created,
        // The model that answered (a client's `model` names what it asked for, not what scored).
        "model": state.model_label,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("reward:{reward}")},
                     "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": tokens, "completion_tokens": 1, "total_tokens": tokens + 1},
    })))
}

/// OpenAI content-part arrays (`[{"type": "text", "text": ...}, ...]`) become the plain string
/// the chat template expects; parts other than text are refused by name.
fn flatten_content(message: &mut Value) -> Result<(), ApiError> {
    let Some(Value::Array(parts)) = message.get("content") else { return Ok(()) };
    let mut text = String::new();
    for part in parts {
        match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
            (Some("text"), Some(t)) => text.push_str(t),
            (kind, _) => {
                return Err(ApiError::bad_request(format!(
                    "content part of type `{}` is not supported (text only)",
                    kind.unwrap_or("?")
                )));
            }
        }
    }
    message["content"] = Value::String(text);
    Ok(())
}

/// OpenRLHF's remote reward model: `{"query": [full texts], "prompts": [...], "labels": [...]}`
/// → `{"rewards": [...], "scores": [...]}`. The queries are complete, already templated texts
/// (prompt and response, with their special tokens); `prompts` and `labels` are accepted and
/// not used.
pub(super) async fn get_reward(State(state): State<Arc<AppState>>, body: Body) -> Result<Json<Value>, ApiError> {
    let mut o = json_object(&body)?;
    let queries: Vec<String> = field(&mut o, "query")?;
    check_candidates(queries.len(), state.config.max_candidates)?;
    let _permit = admit(&state)?;
    let (rewards, _) = state.engine.score_texts(queries).await?;
    let rewards = crate::input::scores_json(&rewards);
    Ok(Json(json!({"rewards": rewards, "scores": rewards})))
}

/// vLLM's pooling classifier. `input` (a string or a list of strings: complete templated
/// texts, scored as given — arbiter never adds special tokens to them) or `messages` (a chat
/// ending in the assistant turn to score, templated here). The reward model has one output:
/// with `use_activation: false` (or the older `activation: false`) `probs` holds the raw
/// reward, otherwise its sigmoid, as vLLM does for one-label classifiers. Not supported (400):
/// token-id inputs and `truncate_prompt_tokens` (arbiter never truncates).
pub(super) async fn classify(State(state): State<Arc<AppState>>, body: Body) -> Result<Json<Value>, ApiError> {
    let mut o = json_object(&body)?;
    if o.contains_key("truncate_prompt_tokens") {
        return Err(ApiError::bad_request("`truncate_prompt_tokens` is not supported: arbiter never truncates inputs"));
    }
    let activation = match (o.remove("use_activation"), o.remove("activation")) {
        (Some(Value::Bool(b)), _) | (None, Some(Value::Bool(b))) => b,
        (None, None) | (Some(Value::Null), _) => true,
        _ => return Err(ApiError::bad_request("field `use_activation`: expected a boolean")),
    };
    let _permit;
    let (scores, tokens) = match (o.remove("input"), o.contains_key("messages")) {
        (Some(_), true) => return Err(ApiError::bad_request("give either `input` or `messages`, not both")),
        (Some(input), false) => {
            let texts: Vec<String> = match input {
                Value::String(s) => vec![s],
                Value::Array(items) if items.iter().all(Value::is_string) => {
                    items.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
                }
                _ => {
                    return Err(ApiError::bad_request(
                        "field `input`: expected a string or a list of strings (token-id inputs are not supported)",
                    ));
                }
            };
            check_candidates(texts.len(), state.config.max_candidates)?;
            _permit = admit(&state)?;
            state.engine.score_texts(texts).await?
        }
        (None, true) => {
            let (conversation, last) = split_last_assistant(field(&mut o, "messages")?)?;
            _permit = admit(&state)?;
            state.engine.score(conversation, vec![last]).await?
        }
        (None, false) => return Err(ApiError::bad_request("missing field `input` (or `messages`)")),
    };
    let data: Vec<Value> = scores
        .iter()
        .enumerate()
        .map(|(index, &s)| {
            let p = if activation { 1.0 / (1.0 + (-s).exp()) } else { s };
            json!({"index": index, "label": "reward", "probs": crate::input::scores_json(&[p]), "num_classes": 1})
        })
        .collect();
    let id = state.request_counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(Json(json!({
        "id": format!("classify-{}-{id}", now()),
        "object": "list",
        "created": now(),
        // The model that answered, whatever name the client asked for.
        "model": state.model_label,
        "data": data,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0, "prompt_tokens_details": null},
    })))
}

/// The OpenAI-style model list (vLLM and NIM clients read the model id from it).
pub(super) async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{"id": state.model_label, "object": "model", "created": 0, "owned_by": "arbiter",
                  "max_model_len": state.engine.model().limits().max_input_tokens}],
    }))
}
