//! `Idempotency-Key` handling for the endpoints that create orders, with the
//! semantics of the IETF draft (as Stripe implements them): the key is
//! scoped to the user; a retry with the same key and request gets the stored
//! first response; the same key with another request is 422; a retry while
//! the first is still being processed by this process is 409. The record is
//! claimed and written in the same unit of work as the order (see
//! `kassa_common::store::idempotency`), so a key is never stored without its
//! effect, and requests racing on other processes or hosts find the first
//! response instead of placing a second order.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kassa_common::store::idempotency::StoredResponse;

use crate::error::ApiError;

/// The request header carrying the key.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on a replayed response.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The optional `Idempotency-Key` of a request: 1–255 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(&IDEMPOTENCY_KEY) else {
            return Ok(IdempotencyKey(None));
        };
        let key = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
        match key {
            Some(key) => Ok(IdempotencyKey(Some(key.to_owned()))),
            None => Err(ApiError::invalid("Idempotency-Key", "must be 1 to 255 visible ASCII characters")),
        }
    }
}

/// Keys whose first request is being processed in this process.
#[derive(Clone, Default)]
pub struct InFlight(Arc<Mutex<HashSet<(i64, String)>>>);

/// Holds a key as in flight until dropped.
pub struct KeyGuard {
    in_flight: InFlight,
    user_id: i64,
    key: Option<String>,
}

impl InFlight {
    /// Claims `(user_id, key)` for this request; a second concurrent request
    /// with the same key gets 409. Without a key there is nothing to claim.
    pub fn claim(&self, user_id: i64, key: IdempotencyKey) -> Result<KeyGuard, ApiError> {
        if let Some(key) = &key.0 {
            let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if !set.insert((user_id, key.clone())) {
                return Err(ApiError::conflict(
                    "a request with this Idempotency-Key is still being processed; retry later",
                ));
            }
        }
        Ok(KeyGuard { in_flight: self.clone(), user_id, key: key.0 })
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut set = self.in_flight.0.lock().unwrap_or_else(|e| e.into_inner());
            set.remove(&(self.user_id, key));
        }
    }
}

impl KeyGuard {
    /// The key, if the request had one.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

/// The stored first response for a key, or 422 if the key was used for a
/// different request (another fingerprint).
pub fn replay(stored: &StoredResponse, fingerprint: &str) -> Result<Response, ApiError> {
    if stored.fingerprint != fingerprint {
        return Err(ApiError::invalid("Idempotency-Key", "this key was already used with a different request"));
    }
    let status =
        u16::try_from(stored.status_code).ok().and_then(|s| StatusCode::from_u16(s).ok()).unwrap_or(StatusCode::OK);
    let body: serde_json::Value = serde_json::from_str(&stored.response_body).unwrap_or_default();
    let mut response = respond(status, &body, stored.location.as_deref());
    response.headers_mut().insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    Ok(response)
}

/// A JSON response with an optional `Location`.
pub fn respond(status: StatusCode, body: &serde_json::Value, location: Option<&str>) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The fingerprint of a request: method, path and canonical JSON body
/// (object keys sorted, whitespace dropped).
pub fn fingerprint(method: &str, path: &str, body: &serde_json::Value) -> String {
    let mut text = format!("{method} {path} ");
    write_canonical(&mut text, body);
    text
}

/// Writes JSON with object keys in sorted order, whatever map type
/// serde_json was built with.
fn write_canonical(out: &mut String, value: &serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(out, value);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn fingerprints_ignore_key_order_and_whitespace() {
        let a: serde_json::Value = serde_json::from_str(r#"{"b": [1, {"y":1,"x":2}], "a": null}"#).expect("json");
        let b: serde_json::Value = serde_json::from_str(r#"{"a":null,"b":[1,{"x":2,"y":1}]}"#).expect("json");
        assert_eq!(fingerprint("POST", "/orders/", &a), fingerprint("POST", "/orders/", &b));
        assert_ne!(fingerprint("POST", "/orders/", &a), fingerprint("POST", "/cart/1/checkout", &a));
    }
}
