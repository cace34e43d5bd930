//! The API's one error shape, `{"error": "...", "type": "..."}`, and the one place where
//! errors become HTTP statuses.

use arbiter_plugins::{ErrorKind, PluginError, PolicyError, RewardErrorKind};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::engine_thread::ScoreError;
use crate::select::SelectError;

/// An API error.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable type.
    pub kind: String,
    /// Human-readable message naming the field, plugin or limit.
    pub message: String,
}

impl ApiError {
    /// A 400 naming what is wrong with the request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, kind: "invalid_request".into(), message: message.into() }
    }

    /// Builds an error with an explicit status.
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        Self { status, kind: kind.into(), message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({"error": self.message, "type": self.kind}))).into_response()
    }
}

/// Status mapping for plugin errors: the caller's faults are 4xx; a plugin that breaks a limit
/// or its output contract is 502 (a component behind the API misbehaved), typed by the kind.
impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        let status = match &e.kind {
            ErrorKind::Policy(PolicyError::InvalidParams(_) | PolicyError::NoCandidates) => StatusCode::BAD_REQUEST,
            ErrorKind::InputTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        };
        let prefix = if e.kind.is_plugin_fault() { "plugin_" } else { "" };
        Self { status, kind: format!("{prefix}{}", e.kind.label()), message: e.to_string() }
    }
}

impl From<SelectError> for ApiError {
    fn from(e: SelectError) -> Self {
        let scoring = match &e {
            SelectError::Input(_) | SelectError::Plugin(_) => None,
            SelectError::Scoring { error, .. } => Some(error.kind),
        };
        match (e, scoring) {
            (SelectError::Input(m), _) => ApiError::bad_request(m),
            (SelectError::Plugin(p), _) => p.into(),
            (e, Some(kind)) => {
                let (status, label) = match kind {
                    RewardErrorKind::TooLong => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_tokens"),
                    RewardErrorKind::BadInput | RewardErrorKind::Unavailable => {
                        (StatusCode::BAD_REQUEST, "invalid_request")
                    }
                    RewardErrorKind::Overloaded => (StatusCode::TOO_MANY_REQUESTS, "overloaded"),
                    RewardErrorKind::Failed => (StatusCode::INTERNAL_SERVER_ERROR, "engine_error"),
                };
                ApiError::new(status, label, e.to_string())
            }
            (e, None) => ApiError::bad_request(e.to_string()),
        }
    }
}

impl From<ScoreError> for ApiError {
    fn from(e: ScoreError) -> Self {
        match &e {
            ScoreError::QueueFull(_) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "overloaded", e.to_string()),
            ScoreError::Input(arbiter_engine::EngineError::TooLong { .. }) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_many_tokens", e.to_string())
            }
            ScoreError::Input(_) => ApiError::bad_request(e.to_string()),
            ScoreError::Engine(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "engine_error", e.to_string()),
        }
    }
}
