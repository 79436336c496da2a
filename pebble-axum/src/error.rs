//! `pebble::Error` as an HTTP response (feature `errors`, on by default).

use std::fmt;

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pebble::{Error, SqlState};

/// A handler's result whose error answers as [`ApiError`]: `?` on any
/// pebble call converts.
///
/// ```no_run
/// use pebble::{Model, TenantDb};
/// use pebble_axum::{ApiResult, Tenant};
///
/// #[derive(Model)]
/// struct Doc { #[pebble(primary_key)] id: i64, #[tenant_id] org: i64, title: String }
///
/// async fn title(Tenant(db): Tenant<TenantDb<i64>>) -> ApiResult<String> {
///     Ok(db.find::<Doc>(1).one().await?.title) // none: 404 {"error":"not_found",...}
/// }
/// ```
pub type ApiResult<T> = Result<T, ApiError>;

/// A [`pebble::Error`] answered as an HTTP status with a JSON body
/// `{"error": "<code>", "message": "<safe text>"}`.
///
/// | error | status | `error` |
/// |---|---|---|
/// | `NotFound` | 404 | `not_found` |
/// | `TenantDropped` (its database was dropped meanwhile) | 404 | `tenant_unknown` |
/// | `UnknownTenant`, `TenantNotReady` (not in the registry, or not `ready`) | 404 | `tenant_unknown` |
/// | unique violation (`is_unique_violation`, 23505) | 409 | `conflict` |
/// | foreign-key violation (23503) | 409 | `conflict` |
/// | `StrategyMismatch` (registered as a database tenant, asked as a schema one, or back) | 409 | `conflict` |
/// | `TenantMismatch` | 403 | `tenant_mismatch` |
/// | `InvalidTenantId` | 400 | `invalid_tenant_id` |
/// | `Pool` (no connection in time, pool closed) | 503 + `Retry-After: 1` | `unavailable` |
/// | `Connection` (`is_connection_error`) | 503 + `Retry-After: 1` | `unavailable` |
/// | `Timeout` | 503 + `Retry-After: 1` | `unavailable` |
/// | `TenantDatabaseGone` (moved or re-created by another process; the next request's handle finds it) | 503 + `Retry-After: 1` | `unavailable` |
/// | anything else | 500 | `internal` |
///
/// The body never carries SQL, server messages, constraint or table names:
/// the full error is logged with `tracing` (target `pebble_axum`; ERROR for
/// 5xx, DEBUG otherwise), inside the request's span.
///
/// ```
/// use axum::response::IntoResponse;
/// use pebble_axum::ApiError;
///
/// let err = ApiError::from(pebble::Error::NotFound { table: "projects" });
/// assert_eq!(err.status().as_u16(), 404);
/// assert_eq!(err.into_response().status().as_u16(), 404);
/// ```
pub struct ApiError(pub Error);

impl ApiError {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.classify().0
    }

    /// The pebble error.
    pub fn error(&self) -> &Error {
        &self.0
    }

    fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        let err = &self.0;
        match err {
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found", "not found"),
            Error::TenantDropped { .. } => (
                StatusCode::NOT_FOUND,
                "tenant_unknown",
                "the tenant no longer exists",
            ),
            Error::UnknownTenant { .. } | Error::TenantNotReady { .. } => {
                (StatusCode::NOT_FOUND, "tenant_unknown", "no such tenant")
            }
            e if e.is_unique_violation() => (
                StatusCode::CONFLICT,
                "conflict",
                "a resource with these values already exists",
            ),
            // An admin route provisioning or dropping a tenant the
            // registry holds under the other strategy: the request clashes
            // with what exists, the server is fine.
            Error::StrategyMismatch { .. } => (
                StatusCode::CONFLICT,
                "conflict",
                "the tenant exists with another isolation strategy",
            ),
            e if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => (
                StatusCode::CONFLICT,
                "conflict",
                "the request refers to a resource that does not exist, or one still referenced",
            ),
            Error::TenantMismatch { .. } => (
                StatusCode::FORBIDDEN,
                "tenant_mismatch",
                "the data belongs to another tenant",
            ),
            Error::InvalidTenantId { reason, .. } => {
                (StatusCode::BAD_REQUEST, "invalid_tenant_id", reason)
            }
            // The manager forgot the pool: the next request's handle reads
            // the registry again and reaches the tenant where it is now.
            Error::Pool(_) | Error::Timeout(_) | Error::TenantDatabaseGone { .. } => unavailable(),
            e if e.is_connection_error() => unavailable(),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            ),
        }
    }
}

fn unavailable() -> (StatusCode, &'static str, &'static str) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the database is unavailable; retry later",
    )
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        ApiError(err)
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.classify();
        if status.is_server_error() {
            tracing::error!(target: "pebble_axum", status = status.as_u16(), error = %self.0, details = ?self.0, "request failed");
        } else {
            tracing::debug!(target: "pebble_axum", status = status.as_u16(), error = %self.0, "request refused");
        }
        let mut response = (
            status,
            Json(serde_json::json!({ "error": code, "message": message })),
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // Pool timeouts and outages pass: tell clients to come back
            // rather than fail for good.
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pebble::deadpool_postgres::PoolError;

    fn status(err: Error) -> u16 {
        let err = ApiError::from(err);
        let status = err.status();
        assert_eq!(err.into_response().status(), status);
        status.as_u16()
    }

    #[test]
    fn variants_without_a_server() {
        assert_eq!(status(Error::NotFound { table: "t" }), 404);
        let mismatch = Error::TenantMismatch {
            table: "t",
            expected: "1".into(),
            found: "2".into(),
        };
        assert_eq!(status(mismatch), 403);
        let invalid = Error::InvalidTenantId {
            id: "x".into(),
            reason: "r",
        };
        assert_eq!(status(invalid), 400);
        assert_eq!(status(Error::TenantDropped { id: "a".into() }), 404);
        assert_eq!(status(Error::UnknownTenant { id: "a".into() }), 404);
        let not_ready = Error::TenantNotReady {
            id: "a".into(),
            status: "pending".into(),
        };
        assert_eq!(status(not_ready), 404);
        let mismatch = Error::StrategyMismatch {
            id: "a".into(),
            registered: "database".into(),
        };
        assert_eq!(status(mismatch), 409);
        let elsewhere = Error::UnknownServer {
            id: "a".into(),
            server: "eu-2".into(),
        };
        assert_eq!(status(elsewhere), 500);
        assert_eq!(status(Error::Pool(PoolError::Closed)), 503);
        assert_eq!(status(Error::Timeout("x")), 503);
        assert_eq!(status(Error::TenantDatabaseGone { id: "a".into() }), 503);
        assert_eq!(status(Error::TransactionAborted), 500);
        assert_eq!(status(Error::NothingToSet { table: "t" }), 500);
        assert_eq!(status(Error::Config("secret://url".into())), 500);
    }

    #[test]
    fn unavailable_says_when_to_retry() {
        let response = ApiError(Error::Pool(PoolError::Closed)).into_response();
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        let response = ApiError(Error::TransactionAborted).into_response();
        assert!(response.headers().get(RETRY_AFTER).is_none());
    }
}
