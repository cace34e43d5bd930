//! Middleware that bounds every request before a handler sees it: the body must arrive whole,
//! within `--max-body-bytes` and `--body-timeout-seconds`; and a request still running at the
//! drain deadline answers 503 instead of having its connection cut.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// Reads the whole body (bounded in bytes and time) before the handler runs, so a slow or
/// truncated body costs a timer, never a handler, a permit or an engine slot.
pub async fn read_body(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let limit = state.config.max_body_bytes;
    let timeout = state.config.body_timeout;
    let bytes = match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            let over = e.into_inner().downcast_ref::<http_body_util::LengthLimitError>().is_some();
            let error = if over {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the request body is over {limit} bytes (--max-body-bytes)"),
                )
            } else {
                // The client closed (or broke) the connection before its body was complete.
                ApiError::bad_request("the request body ended before its declared length").with_kind("incomplete_body")
            };
            return error.into_response();
        }
        Err(_) => {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("the request body did not arrive within {} s (--body-timeout-seconds)", timeout.as_secs_f64()),
            )
            .into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// Races the request against the drain deadline: past it, the request answers 503 (and its
/// work is dropped: queued engine jobs are abandoned, a running plugin is stopped).
pub async fn drain_deadline(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let mut expired = state.drain_expired.clone();
    tokio::select! {
        response = next.run(req) => response,
        _ = expired.wait_for(|e| *e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down and this request did not finish within --drain-seconds; retry on another replica",
        )
        .into_response(),
    }
}
