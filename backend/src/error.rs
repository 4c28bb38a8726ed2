//! The one error type of the HTTP API. Every handler returns `Result<_, ApiError>`; the body is
//! always `{"error": {"code", "message"}}`. Internal failures are logged with their cause and
//! shown to clients only as a generic 500, so nothing about the server leaks.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An HTTP error with a stable code and a readable message.
#[derive(Debug, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// HTTP status sent.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Readable message, shown as-is in the UI.
    pub message: String,
}

impl ApiError {
    /// Any error with an explicit status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 for a missing resource, named in the message (e.g. "project 7").
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("There is no {what}."))
    }

    /// 409: the request clashes with what is stored.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 500 for a failure that is the server's fault; the cause goes to the log only.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on the server; it has been logged.",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = api::ErrorBody::new(self.code, self.message);
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<api::ValidationError> for ApiError {
    fn from(error: api::ValidationError) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, error.code(), error.to_string())
    }
}

impl From<api::AccountError> for ApiError {
    fn from(error: api::AccountError) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, error.code(), error.to_string())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        // Unique constraints are checked by the handlers with a precise message; one reaching
        // here lost a race with a concurrent request, which is still the client's conflict.
        if let sqlx::Error::Database(db) = &error
            && db.is_unique_violation()
        {
            return Self::conflict(
                "conflict",
                "That conflicts with something just stored; reload and retry.",
            );
        }
        Self::internal(error)
    }
}

/// Fallback for `/api/*` paths that match no route.
pub async fn api_route_not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!("No API route {}.", uri.path()),
    )
}

/// Fallback for a known `/api` path called with the wrong method.
pub async fn api_method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}.", uri.path()),
    )
}
