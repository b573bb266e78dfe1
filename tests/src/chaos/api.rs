//! The harness's HTTP client. Unlike `TestApp`'s methods it never panics: a
//! request to an API that was just SIGKILLed fails with a transport error
//! the caller decides about (retry with the same `Idempotency-Key`, or count
//! the outcome as unknown), and the base URL follows the API across restarts.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::Value;

/// An HTTP answer: status, whether it was an idempotent replay, JSON body.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// `Idempotent-Replayed: true` was set.
    pub replayed: bool,
    /// The body as JSON (`Value::String` with the raw text when not JSON).
    pub body: Value,
}

impl Answer {
    /// The `id` member of the body, for created orders and accounts.
    pub fn id(&self) -> Option<i64> {
        self.body["id"].as_i64()
    }
}

/// One request.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    /// Method.
    pub method: &'a Method,
    /// Path and query, e.g. `/orders/12`.
    pub path: &'a str,
    /// Bearer token.
    pub token: Option<&'a str>,
    /// JSON body.
    pub body: Option<&'a Value>,
    /// `Idempotency-Key` header.
    pub idempotency_key: Option<&'a str>,
}

impl<'a> Call<'a> {
    /// A request without a body or key.
    pub fn new(method: &'a Method, path: &'a str, token: Option<&'a str>) -> Call<'a> {
        Call { method, path, token, body: None, idempotency_key: None }
    }

    /// With a JSON body.
    pub fn body(mut self, body: &'a Value) -> Call<'a> {
        self.body = Some(body);
        self
    }

    /// With an `Idempotency-Key`.
    pub fn key(mut self, key: Option<&'a str>) -> Call<'a> {
        self.idempotency_key = key;
        self
    }
}

/// The API as the clients see it.
pub struct Api {
    client: reqwest::Client,
    base_url: RwLock<String>,
    aborted: AtomicBool,
}

impl Api {
    /// A client for the API at `base_url`.
    pub fn new(base_url: String) -> anyhow::Result<Api> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .context("Failed to build the HTTP client")?;
        Ok(Api { client, base_url: RwLock::new(base_url), aborted: AtomicBool::new(false) })
    }

    /// Points the clients at a restarted API.
    pub fn set_base_url(&self, base_url: String) {
        *self.base_url.write().unwrap_or_else(|e| e.into_inner()) = base_url;
    }

    /// Makes every pending and later [`Api::send_until_answered`] give up:
    /// the API will not come back.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::Relaxed);
    }

    /// Whether [`Api::abort`] was called.
    pub fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Sends one request; a transport failure (API down, connection cut) is
    /// an error.
    pub async fn send(&self, call: Call<'_>) -> Result<Answer, reqwest::Error> {
        let mut request = self.client.request(call.method.clone(), self.url(call.path));
        if let Some(token) = call.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = call.body {
            request = request.json(body);
        }
        if let Some(key) = call.idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let replayed = response.headers().get("idempotent-replayed").is_some_and(|v| v.as_bytes() == b"true");
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, replayed, body })
    }

    /// Sends until the API answers (it may be restarting), at most until
    /// `deadline`. Only for requests that are safe to repeat.
    pub async fn send_until_answered(&self, call: Call<'_>, deadline: Instant) -> anyhow::Result<Answer> {
        loop {
            match self.send(call).await {
                Ok(answer) => return Ok(answer),
                Err(error) if Instant::now() >= deadline || self.is_aborted() => {
                    bail!("{} {} got no answer: {error}", call.method, call.path)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Sends until answered and requires `expected_status`; returns the body.
    pub async fn expect(&self, call: Call<'_>, expected_status: u16, deadline: Instant) -> anyhow::Result<Value> {
        let answer = self.send_until_answered(call, deadline).await?;
        if answer.status != expected_status {
            bail!(
                "{} {} answered {} (expected {expected_status}): {}",
                call.method,
                call.path,
                answer.status,
                answer.body
            );
        }
        Ok(answer.body)
    }
}
