//! Why a request was answered before its handler ran.

use std::fmt;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// A request refused while resolving its tenant; the handler does not run
/// and no statement is sent for it.
///
/// It answers with its status and a JSON body
/// `{"error": "<code>", "message": "<why>"}`:
///
/// | constructor | status | `error` |
/// |---|---|---|
/// | [`missing`](Self::missing) | 400 | `tenant_missing` |
/// | [`malformed`](Self::malformed) | 400 | `tenant_malformed` |
/// | [`unauthorized`](Self::unauthorized) | 401 | `tenant_unauthorized` |
/// | [`unknown`](Self::unknown) | 404 | `tenant_unknown` |
/// | (registry or tenant database unreachable) | 503 | `tenant_unavailable` |
/// | (an extractor the layer cannot serve) | 500 | `tenant_misconfigured` |
///
/// A [`Resolver::from_fn`](crate::Resolver::from_fn) closure returns one
/// of the first four:
///
/// ```
/// use pebble_axum::TenantRejection;
/// let no_token = TenantRejection::unauthorized("a bearer token is required");
/// assert_eq!(no_token.status().as_u16(), 401);
/// assert_eq!(no_token.code(), "tenant_unauthorized");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRejection {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl TenantRejection {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        TenantRejection {
            status,
            code,
            message: message.into(),
        }
    }

    /// The request names no tenant: 400.
    pub fn missing(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "tenant_missing", message)
    }

    /// The request names a tenant in a form that cannot be one: 400.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "tenant_malformed", message)
    }

    /// The caller is not authenticated for any tenant (no or an invalid
    /// token): 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "tenant_unauthorized", message)
    }

    /// The tenant is well formed but does not exist: 404.
    pub fn unknown(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "tenant_unknown", message)
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "tenant_unavailable",
            message,
        )
    }

    pub(crate) fn misconfigured(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "tenant_misconfigured",
            message,
        )
    }

    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable `error` field of the body.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human-readable `message` field of the body.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TenantRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for TenantRejection {}

impl IntoResponse for TenantRejection {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(target: "pebble_axum", code = self.code, reason = %self.message, "tenant not resolved");
        } else {
            tracing::debug!(target: "pebble_axum", code = self.code, reason = %self.message, "tenant not resolved");
        }
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.code, "message": self.message })),
        )
            .into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}
