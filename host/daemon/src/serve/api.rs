//! Routes and handlers. Every handler validates its body into typed values first (naming the
//! field on failure), takes an admission permit (429 at once when none is free), and runs
//! plugin and engine work off the async workers.

use std::sync::Arc;
use std::time::Instant;

use arbiter_plugins::LogLine;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::OwnedSemaphorePermit;

use super::error::ApiError;
use super::request::Cancel;
use super::{AppState, AuthScope, compat, guards};
use crate::input::SelectInput;
use crate::select;

/// The router over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/score", post(score))
        .route("/v1/select", post(select_route))
        .route("/v1/policies", get(policies))
        .route("/v1/chat/completions", post(compat::chat_completions))
        .route("/v1/models", get(compat::models))
        .route("/get_reward", post(compat::get_reward))
        .route("/classify", post(compat::classify))
        .route("/v1/classify", post(compat::classify))
        .route("/health", get(health))
        .route("/info", get(info))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        // Unknown paths and methods get the same JSON error shape as every other status.
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Innermost first: body read (bounded) → drain deadline → auth and metrics.
        .layer(axum::middleware::from_fn_with_state(state.clone(), guards::read_body))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guards::drain_deadline))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        // The body limit lives in one place, `guards::read_body`, which answers it in the API's
        // error shape; axum's own (2 MiB, plain-text) limit would only shadow it.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route {}; see /openapi.json", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}; see /openapi.json", uri.path()),
    )
}

/// Auth (`/v1/*`, or every route but `/health` with `AuthScope::All`), request metrics and
/// latency for everything.
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req.uri().path().to_owned();
    let started = Instant::now();
    let abandoned = Abandoned { state: Some(state.clone()), route: route_label(&route), started };
    let protected = match state.config.auth_scope {
        AuthScope::Api => route.starts_with("/v1/") || matches!(route.as_str(), "/get_reward" | "/classify"),
        AuthScope::All => route != "/health",
    };
    let response = match &state.config.api_key {
        Some(key) if protected && !authorized(req.headers(), key) => unauthorized(),
        _ => next.run(req).await,
    };
    abandoned.completed(response.status().as_u16());
    response
}

/// Whether `Authorization` carries `key` as a bearer token: the scheme is case-insensitive
/// (RFC 9110 §11.1), the key is compared in constant time.
fn authorized(headers: &axum::http::HeaderMap, key: &str) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some((scheme, token)) = value.trim().split_once(' ') else { return false };
    scheme.eq_ignore_ascii_case("bearer") && constant_time_eq(token.trim().as_bytes(), key.as_bytes())
}

/// Compares every byte whatever the first difference, so timing says nothing about how much
/// of a guess was right (only, as with any such check, whether the lengths differ).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(!x);
    }
    diff == 0
}

fn unauthorized() -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "missing or wrong bearer API key").into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer realm=\"arbiter\""));
    response
}

/// Routes get their own metric label; anything else is `other` (bounded label set).
fn route_label(path: &str) -> &'static str {
    const ROUTES: [&str; 12] = [
        "/v1/score",
        "/v1/select",
        "/v1/policies",
        "/v1/chat/completions",
        "/v1/models",
        "/get_reward",
        "/classify",
        "/v1/classify",
        "/health",
        "/info",
        "/metrics",
        "/openapi.json",
    ];
    ROUTES.into_iter().find(|r| *r == path).unwrap_or("other")
}

/// Records a request in the metrics once: with its status when it completes, or as 499 when
/// its future is dropped first (the client went away), so abandoned requests are counted.
/// A plugin's limits as `/v1/policies` shows them (the `--limit` keys).
fn limits_json(l: &arbiter_plugins::Limits) -> Value {
    json!({"fuel": l.fuel, "timeout-ms": l.timeout.as_millis() as u64, "memory-mib": l.memory_bytes >> 20,
           "max-candidates": l.max_candidates, "max-input-bytes": l.max_input_bytes, "max-log-bytes": l.max_log_bytes,
           "reward-responses": l.reward_responses, "max-host-calls": l.max_host_calls,
           "deadline-ms": l.deadline.as_millis() as u64})
}

struct Abandoned {
    state: Option<Arc<AppState>>,
    route: &'static str,
    started: Instant,
}

impl Abandoned {
    fn completed(mut self, status: u16) {
        self.record(status);
    }

    fn record(&mut self, status: u16) {
        if let Some(state) = self.state.take() {
            let ms = self.started.elapsed().as_secs_f64() * 1000.0;
            // The access log (filter with ARBITER_LOG=arbiter::access=off to silence it).
            tracing::info!(target: "arbiter::access", route = self.route, status, ms, "request");
            state.metrics.requests.inc(&[self.route, &status.to_string()]);
            state.metrics.latency.observe(self.route, self.started.elapsed().as_secs_f64());
        }
    }
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        self.record(499);
    }
}

pub(super) fn admit(state: &AppState) -> Result<OwnedSemaphorePermit, ApiError> {
    state.admission.clone().try_acquire_owned().map_err(|_| {
        state.metrics.rejected_overload.inc();
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "overloaded",
            format!("{} requests already in flight (--max-concurrent-requests)", state.config.max_concurrent_requests),
        )
    })
}

/// Parses a JSON body (already read whole and within its limit by `guards::read_body`).
pub(super) fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Takes field `name` out of a JSON object body, naming it in any error.
pub(super) fn field<T: serde::de::DeserializeOwned>(
    body: &mut serde_json::Map<String, Value>,
    name: &str,
) -> Result<T, ApiError> {
    let v = body.remove(name).ok_or_else(|| ApiError::bad_request(format!("missing field `{name}`")))?;
    serde_json::from_value(v).map_err(|e| ApiError::bad_request(format!("field `{name}`: {e}")))
}

/// A JSON object body with only the `allowed` fields.
pub(super) fn object(value: Value, allowed: &[&str]) -> Result<serde_json::Map<String, Value>, ApiError> {
    let Value::Object(map) = value else { return Err(ApiError::bad_request("the body must be a JSON object")) };
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!("unknown field `{k}` (expected {})", allowed.join(", "))));
    }
    Ok(map)
}

/// `/v1/score`: a conversation and its responses (templated here), or texts the caller
/// already templated (scored as given: no template, no special tokens added).
enum ScoreBody {
    Conversation { messages: Vec<arbiter_engine::Message>, responses: Vec<String> },
    Texts(Vec<String>),
}

impl ScoreBody {
    fn from_json(v: Value) -> Result<Self, ApiError> {
        let mut o = object(v, &["messages", "responses", "texts"])?;
        if o.contains_key("texts") {
            if o.contains_key("messages") || o.contains_key("responses") {
                return Err(ApiError::bad_request("give either `texts` or `messages` and `responses`, not both"));
            }
            return Ok(Self::Texts(field(&mut o, "texts")?));
        }
        Ok(Self::Conversation { messages: field(&mut o, "messages")?, responses: field(&mut o, "responses")? })
    }

    fn len(&self) -> usize {
        match self {
            Self::Conversation { responses, .. } => responses.len(),
            Self::Texts(texts) => texts.len(),
        }
    }
}

pub(super) fn check_candidates(n: usize, max: usize) -> Result<(), ApiError> {
    if n == 0 {
        return Err(ApiError::bad_request("`responses`/`candidates` is empty"));
    }
    if n > max {
        return Err(ApiError::bad_request(format!("{n} candidates, limit {max} (--max-candidates)")));
    }
    Ok(())
}

async fn score(State(state): State<Arc<AppState>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let body = ScoreBody::from_json(parse(&body)?)?;
    check_candidates(body.len(), state.config.max_candidates)?;
    let _permit = admit(&state)?;
    let (scores, tokens) = match body {
        ScoreBody::Conversation { messages, responses } => state.engine.score(messages, responses).await?,
        ScoreBody::Texts(texts) => state.engine.score_texts(texts).await?,
    };
    Ok(Json(json!({
        "scores": crate::input::scores_json(&scores),
        "model": state.model_label,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })))
}

async fn select_route(State(state): State<Arc<AppState>>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
    let input = SelectInput::parse(text).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let n = input.candidate_count();
    check_candidates(n, state.config.max_candidates)?;
    let name = input.policy.clone().ok_or_else(|| ApiError::bad_request("missing field `policy`"))?;
    let policy = state.registry.get(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_policy",
            format!("no policy named `{name}` (see GET /v1/policies)"),
        )
    })?;
    let rules = input
        .rules
        .iter()
        .map(|r| {
            state
                .registry
                .get(r)
                .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_rule", format!("no rule named `{r}`")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let _permit = admit(&state)?;
    // If the client goes away, hyper drops this future: the guard then abandons the request,
    // so its queued engine jobs are dropped and its plugin stops at the next host call or tick.
    let cancel = Cancel::default();
    let abandon = cancel.on_drop();
    let backend = Arc::new(state.engine.backend(cancel));
    let worker_state = state.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let result = select::run(&policy, &rules, &input, backend);
        let label = match &result {
            Ok(_) => "ok".to_owned(),
            Err(crate::select::SelectError::Plugin(p)) => p.kind.label().to_owned(),
            Err(crate::select::SelectError::Cancelled) => "cancelled".to_owned(),
            Err(_) => "input".to_owned(),
        };
        worker_state.metrics.plugin_calls.inc(&[&policy.id().name, &label]);
        result
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("selection task failed: {e}")))?;
    abandon.disarm();
    let outcome = outcome?;
    let logs: Vec<Value> = outcome
        .logs
        .iter()
        .map(|(p, l): &(String, LogLine)| json!({"plugin": p, "level": l.level.to_string(), "message": l.message}))
        .collect();
    let mut v = serde_json::to_value(&outcome.output)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    v["model"] = json!(state.model_label);
    v["usage"] = json!({"candidates": n});
    v["timings"] = json!({"total_ms": started.elapsed().as_secs_f64() * 1000.0});
    v["log"] = Value::Array(logs);
    Ok(Json(v))
}

async fn policies(State(state): State<Arc<AppState>>) -> Json<Value> {
    let list: Vec<Value> = state
        .registry
        .entries()
        .into_iter()
        .map(|(name, e)| {
            let (version, sha256, kind) = match &e.plugin {
                Some(p) => (json!(p.id().version), json!(p.id().sha256), json!(p.kind().as_str())),
                None => (Value::Null, Value::Null, Value::Null),
            };
            let secs = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let loaded_at = secs(e.loaded_at);
            let compiling = e.compiling.as_ref().map(|(file, since)| {
                json!({"file": file.display().to_string(), "since": secs(*since),
                       "seconds": since.elapsed().map(|d| d.as_secs()).unwrap_or(0)})
            });
            json!({"name": name, "state": e.state(), "version": version, "sha256": sha256, "kind": kind, "source": e.source,
                   "loaded_at": loaded_at, "last_error": e.last_error, "compiling": compiling,
                   "limits": e.plugin.as_ref().map(|p| limits_json(p.limits()))})
        })
        .collect();
    Json(json!({"policies": list}))
}

async fn health(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    if !state.engine.is_healthy() {
        state
            .engine
            .probe()
            .await
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unhealthy", e.to_string()))?;
    }
    Ok(Json(json!({"status": "ok", "plugins_loading": state.registry.loading()})))
}

/// The effective settings: limits come from the model that enforces them, not from a copy.
async fn info(State(state): State<Arc<AppState>>) -> Json<Value> {
    let limits = state.engine.model().limits();
    Json(json!({
        "name": "arbiter",
        "version": env!("CARGO_PKG_VERSION"),
        "model": state.model_label,
        "engine": state.config.model.describe(),
        "max_concurrent_requests": state.config.max_concurrent_requests,
        "max_queued_jobs": state.engine.capacity(),
        "max_batch_tokens": limits.max_batch_tokens,
        "max_candidates": state.config.max_candidates,
        "max_input_tokens": limits.max_input_tokens,
        "max_body_bytes": state.config.max_body_bytes,
        "policies": state.registry.entries().len(),
    }))
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(state.engine.depth(), state.config.model.prefix_cache_stats()),
    )
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], super::openapi::DOCUMENT)
}
