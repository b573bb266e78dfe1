//! The one error type at the HTTP edge, rendered as RFC 9457
//! `application/problem+json`. Database and unexpected errors become 500 with
//! the cause chain logged, never echoed to the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kassa_common::domain::validation::{FieldError, ValidationErrors};
use kassa_common::store::StoreError;
use serde::Serialize;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON syntax, bad query string).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no valid credentials or token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: authenticated but not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such resource, or not one the caller may see.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request conflicts with the current state; `extra` adds
    /// machine-readable members (such as `available`).
    #[error("{detail}")]
    Conflict {
        /// What conflicts.
        detail: String,
        /// Extra members merged into the problem document.
        extra: serde_json::Map<String, serde_json::Value>,
    },
    /// 413: the body is larger than the configured limit.
    #[error("request body is too large")]
    PayloadTooLarge,
    /// 415: the body's content type is not accepted.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422: one or more fields are invalid.
    #[error("request has invalid fields")]
    Validation(ValidationErrors),
    /// 429: rate limited; retry after the given seconds.
    #[error("too many requests")]
    TooManyRequests {
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
    /// 503: the database cannot be reached right now (server down,
    /// connection lost); nothing was done, a retry later may succeed.
    #[error("the service is temporarily unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// 500: something failed on our side; the cause is logged, not shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A 409 with a detail only.
    pub fn conflict(detail: impl Into<String>) -> Self {
        ApiError::Conflict { detail: detail.into(), extra: serde_json::Map::new() }
    }

    /// A 409 saying how many units of a product are left.
    pub fn not_enough_stock(product_id: i64, available: i64, requested: i64) -> Self {
        let mut extra = serde_json::Map::new();
        extra.insert("product_id".into(), product_id.into());
        extra.insert("available".into(), available.into());
        extra.insert("requested".into(), requested.into());
        ApiError::Conflict {
            detail: format!("only {available} of product {product_id} in stock, {requested} requested"),
            extra,
        }
    }

    /// A 422 for one field.
    pub fn invalid(field: &str, message: &str) -> Self {
        ApiError::Validation(ValidationErrors::single(field, message))
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        ApiError::Validation(errors)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if kassa_common::db::is_unavailable(&error) {
            ApiError::Unavailable(error)
        } else {
            ApiError::Internal(error.into())
        }
    }
}

impl kassa_common::db::WriteError for ApiError {
    fn as_database_error(&self) -> Option<&sqlx::Error> {
        match self {
            ApiError::Unavailable(error) => Some(error),
            ApiError::Internal(error) => error.downcast_ref::<sqlx::Error>(),
            _ => None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Conflict(detail) => ApiError::conflict(detail),
            StoreError::Queue(kassa_common::queue::QueueError::Database(e)) => e.into(),
            StoreError::Queue(e) => ApiError::Internal(e.into()),
            StoreError::Invariant(detail) => ApiError::Internal(anyhow::anyhow!(detail)),
            StoreError::Database(e) => e.into(),
        }
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// Invalid fields, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Extra members, such as `available` or `allowed`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Renders a problem document for `status` with `detail`.
pub fn problem_response(status: StatusCode, detail: impl Into<String>) -> Response {
    render(status, detail.into(), Vec::new(), serde_json::Map::new())
}

fn render(
    status: StatusCode,
    detail: String,
    errors: Vec<FieldError>,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Response {
    let title = status.canonical_reason().unwrap_or("Error").to_owned();
    let slug = title.to_ascii_lowercase().replace(' ', "-");
    let problem = Problem {
        problem_type: format!("urn:kassa:problem:{slug}"),
        title,
        status: status.as_u16(),
        detail,
        errors,
        extra,
    };
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            ApiError::Internal(cause) => {
                tracing::error!(error = ?cause, "request failed");
                problem_response(status, "an internal error occurred; it has been logged")
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "request failed: the database is unavailable");
                let mut response =
                    problem_response(status, "the database is unavailable right now; nothing was done, retry shortly");
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                response
            }
            ApiError::Validation(errors) => {
                render(status, "one or more fields are invalid".into(), errors.0, serde_json::Map::new())
            }
            ApiError::Conflict { detail, extra } => render(status, detail, Vec::new(), extra),
            ApiError::TooManyRequests { retry_after_secs } => {
                let mut response =
                    problem_response(status, format!("rate limit exceeded; retry in {retry_after_secs} s"));
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
                response
            }
            ApiError::Unauthorized(detail) => {
                let mut response = problem_response(status, detail);
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            other => problem_response(status, other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn validation_errors_list_every_field() {
        let mut errors = ValidationErrors::default();
        errors.add("name", "must not be empty");
        errors.add("price_cents", "must not be negative");
        let response = ApiError::Validation(errors).into_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let body = body_json(response).await;
        assert_eq!(body["status"], 422);
        assert_eq!(body["errors"][1]["field"], "price_cents");
    }

    #[tokio::test]
    async fn internal_errors_do_not_leak_their_cause() {
        let response = ApiError::Internal(anyhow::anyhow!("secret table xyz is corrupt")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = body_json(response).await;
        assert!(!body.to_string().contains("xyz"));
    }

    #[tokio::test]
    async fn rate_limits_say_when_to_retry() {
        let response = ApiError::TooManyRequests { retry_after_secs: 7 }.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }
}
