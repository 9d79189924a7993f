//! The one error type every HTTP handler returns, and how it becomes a JSON response.
//!
//! Every failure a client sees is `{"error": "<code>", "detail": "<what went wrong>"}` with a fitting
//! status. Internal causes are logged here, once, and never shown to the client.
//!
//! Also the checks of text parameters from URLs ([`check_text`], [`ticket_ref`]) that the JSON API and
//! the web pages share, with their 400s.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::store::{StoreError, TicketRef};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed or invalid input.
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    /// No credentials, or wrong ones. `challenge` is the `WWW-Authenticate` scheme.
    #[error("{detail}")]
    Unauthorized {
        challenge: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The path exists, the method does not: 405 (JSON like every other error, not axum's empty body).
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("the body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request took longer than `http.request_timeout` (a slowly sent body): 408.
    #[error("{0}")]
    Timeout(String),
    /// Too much to do: 503 (which Alertmanager retries) or 429 with `Retry-After`.
    #[error("{detail}")]
    Overloaded {
        status: StatusCode,
        retry_after_secs: u64,
        detail: String,
    },
    /// The store cannot be reached: 503, the sender should retry.
    #[error("{0}")]
    Unavailable(String),
    /// Something tocsin needs from elsewhere could not be had now (an SNS signing certificate): 503
    /// with what it was, the sender should retry.
    #[error("{0}")]
    Upstream(String),
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Unauthorized { .. } => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::Overloaded { status, .. } => (*status, "overloaded"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Upstream(_) => (StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// Short name for metrics labels.
    pub fn code(&self) -> &'static str {
        self.parts().1
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("no such ticket".into()),
            StoreError::Rejected(r) => ApiError::Conflict(r.to_string()),
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::Full(m) => ApiError::Conflict(m),
            StoreError::Fenced(m) => ApiError::Unavailable(m),
            StoreError::Other(m) => ApiError::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_response_with(|code, detail| json!({"error": code, "detail": detail}))
    }
}

impl ApiError {
    /// The response with the body `shape(code, detail)`: the status, headers and logging of every
    /// error, in the body shape a drop-in API's clients parse (Alertmanager's API answers a JSON string).
    pub fn into_response_with(
        self,
        shape: impl FnOnce(&str, &str) -> serde_json::Value,
    ) -> Response {
        let (status, code) = self.parts();
        let detail = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, "Request failed with an internal error.");
                "something went wrong; the server log has the details".to_string()
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "Storage unavailable.");
                "storage is unavailable; retry later".to_string()
            }
            other => other.to_string(),
        };
        let mut response = (status, Json(shape(code, &detail))).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized { challenge, .. } => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            ApiError::Overloaded {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::Unavailable(_) | ApiError::Upstream(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}

/// The longest search text taken (`q`), in characters.
pub const MAX_SEARCH: usize = 500;
/// The longest other text parameter (a source, a room, a ticket id), in characters.
pub const MAX_PARAM: usize = 200;

/// Checks a text parameter from the URL (query or path) before it reaches the store: no control
/// characters (a NUL would make SQLite's full-text search fail) and at most `max` characters. 400
/// naming the parameter otherwise.
pub fn check_text(name: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("`{name}` must not contain control characters"),
        ));
    }
    if value.chars().count() > max {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("`{name}` is longer than {max} characters"),
        ));
    }
    Ok(())
}

/// A ticket reference from a path (`T-42` or an id), checked like [`check_text`].
pub fn ticket_ref(id: &str) -> Result<TicketRef, ApiError> {
    check_text("id", id, MAX_PARAM)?;
    Ok(TicketRef::parse(id))
}
