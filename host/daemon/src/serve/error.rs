//! The API's one error shape, `{"error": "...", "type": "..."}`, and the one place where
//! errors become HTTP statuses.

use arbiter_plugins::{ErrorKind, PluginError, PolicyError, RewardError, RewardErrorKind};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

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

    /// The same error with another machine-readable type.
    pub fn with_kind(mut self, kind: &str) -> Self {
        kind.clone_into(&mut self.kind);
        self
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
/// A plugin that failed because its `reward` call failed gets that call's status, exactly as
/// the same failure during prescoring does.
impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        if let ErrorKind::Reward(cause) = &e.kind {
            let (status, kind) = reward_status(cause.kind);
            return ApiError::new(status, kind, e.to_string());
        }
        let status = match &e.kind {
            ErrorKind::Policy(PolicyError::InvalidParams(_) | PolicyError::NoCandidates) => StatusCode::BAD_REQUEST,
            ErrorKind::InputTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Cancelled => client_closed(),
            _ => StatusCode::BAD_GATEWAY,
        };
        // API error types are snake_case throughout (metric labels keep the kebab-case form).
        let prefix = if e.kind.is_plugin_fault() { "plugin_" } else { "" };
        Self { status, kind: format!("{prefix}{}", e.kind.label().replace('-', "_")), message: e.to_string() }
    }
}

/// nginx's 499: recorded in metrics for abandoned requests; no client reads it.
fn client_closed() -> StatusCode {
    StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
}

/// The one mapping of scoring failures to statuses, whoever asked for the scores.
fn reward_status(kind: RewardErrorKind) -> (StatusCode, &'static str) {
    match kind {
        RewardErrorKind::TooLong => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_tokens"),
        RewardErrorKind::BadInput => (StatusCode::BAD_REQUEST, "invalid_request"),
        RewardErrorKind::Overloaded => (StatusCode::TOO_MANY_REQUESTS, "overloaded"),
        RewardErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        RewardErrorKind::Failed => (StatusCode::INTERNAL_SERVER_ERROR, "engine_error"),
        RewardErrorKind::Cancelled => (client_closed(), "cancelled"),
    }
}

impl From<RewardError> for ApiError {
    fn from(e: RewardError) -> Self {
        let (status, kind) = reward_status(e.kind);
        ApiError::new(status, kind, e.message)
    }
}

impl From<SelectError> for ApiError {
    fn from(e: SelectError) -> Self {
        match e {
            SelectError::Input(m) => ApiError::bad_request(m),
            SelectError::Plugin(p) => p.into(),
            SelectError::Scoring { ref error, .. } => {
                let (status, kind) = reward_status(error.kind);
                ApiError::new(status, kind, e.to_string())
            }
            SelectError::Cancelled => ApiError::new(client_closed(), "cancelled", e.to_string()),
        }
    }
}
