//! Request extractors whose rejections are problem documents: `Json`,
//! `Query` and `Path` wrappers around axum's, so malformed input is always a
//! clear 4xx with the offending field, never axum's plain-text default.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body; invalid bodies become 400/413/415/422 problems.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let text = rejection.body_text();
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::UnsupportedMediaType("expected a body with `Content-Type: application/json`".into())
        }
        StatusCode::UNPROCESSABLE_ENTITY => {
            let (field, message) = split_serde_path(&text);
            ApiError::invalid(&field, &message)
        }
        _ => ApiError::BadRequest(text),
    }
}

/// axum reports deserialisation errors as
/// `Failed to deserialize …: path.to.field: message`; split off the path.
fn split_serde_path(text: &str) -> (String, String) {
    let rest = text.split_once("target type: ").map_or(text, |(_, rest)| rest);
    match rest.split_once(": ") {
        Some((path, message)) if !path.contains(' ') && path != "." => (path.to_owned(), message.to_owned()),
        _ => ("body".to_owned(), rest.to_owned()),
    }
}

/// An optional JSON body: an empty body is `None`; anything else must be
/// JSON with a JSON content type, like [`Json`].
#[derive(Debug, Clone, Default)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest(e.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if !is_json {
            return Err(ApiError::UnsupportedMediaType("expected a body with `Content-Type: application/json`".into()));
        }
        match serde_json::from_slice::<T>(&bytes) {
            Ok(value) => Ok(OptionalJson(Some(value))),
            Err(e) if e.is_data() => Err(ApiError::invalid("body", &e.to_string())),
            Err(e) => Err(ApiError::BadRequest(format!("invalid JSON: {e}"))),
        }
    }
}

/// A query string; invalid parameters become 422 problems.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    let text = rejection.body_text();
    let message = text.split_once("Failed to deserialize query string: ").map_or(text.as_str(), |(_, rest)| rest);
    let field = message.split_once(':').map(|(field, _)| field).filter(|f| !f.contains(' '));
    ApiError::invalid(field.unwrap_or("query"), message)
}

/// Path parameters; an unparsable id is a 404, as no such resource can exist.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(ApiError::NotFound(format!("no such resource: {}", e.body_text())))
            }
            Err(other) => Err(ApiError::BadRequest(other.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_serde_path;

    #[test]
    fn serde_paths_name_the_field() {
        let text = "Failed to deserialize the JSON body into the target type: price_cents: invalid type: string \"x\", expected i64 at line 1 column 20";
        let (field, message) = split_serde_path(text);
        assert_eq!(field, "price_cents");
        assert!(message.starts_with("invalid type"));
        let (field, _) = split_serde_path(
            "Failed to deserialize the JSON body into the target type: missing field `name` at line 1 column 2",
        );
        assert_eq!(field, "body");
    }
}
