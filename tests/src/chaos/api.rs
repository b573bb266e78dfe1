//! The harness's HTTP client. Unlike `TestApp`'s methods it never panics: a
//! request to an API that was just SIGKILLed fails with a transport error
//! the caller decides about (retry with the same `Idempotency-Key`, or count
//! the outcome as unknown), and the base URLs follow the APIs across
//! restarts. With several API processes it spreads requests over them in
//! turn, as a load balancer would, and a retry goes to the next one. Every
//! 5xx answer is written down with its time, so the checks can tell a 503
//! while the database was cut from one that should not have been.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
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
    /// Which API process to send it to (modulo their number); the next in
    /// turn when `None`.
    pub via: Option<usize>,
}

impl<'a> Call<'a> {
    /// A request without a body or key.
    pub fn new(method: &'a Method, path: &'a str, token: Option<&'a str>) -> Call<'a> {
        Call { method, path, token, body: None, idempotency_key: None, via: None }
    }

    /// To the API process `index` (modulo their number).
    pub fn via(mut self, index: usize) -> Call<'a> {
        self.via = Some(index);
        self
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

/// A 5xx answer.
#[derive(Clone, Debug)]
pub struct ServerError {
    /// When it arrived.
    pub at: Instant,
    /// Its status.
    pub status: u16,
    /// The request and the body, shortened.
    pub what: String,
}

/// The API as the clients see it.
pub struct Api {
    client: reqwest::Client,
    base_urls: RwLock<Vec<String>>,
    next: AtomicUsize,
    aborted: AtomicBool,
    server_errors: Mutex<Vec<ServerError>>,
}

impl Api {
    /// A client for the API processes at `base_urls` (at least one).
    pub fn new(base_urls: Vec<String>) -> anyhow::Result<Api> {
        if base_urls.is_empty() {
            bail!("the client needs at least one API");
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .context("Failed to build the HTTP client")?;
        Ok(Api {
            client,
            base_urls: RwLock::new(base_urls),
            next: AtomicUsize::new(0),
            aborted: AtomicBool::new(false),
            server_errors: Mutex::new(Vec::new()),
        })
    }

    /// Points the clients at the restarted API process `index`.
    pub fn set_base_url(&self, index: usize, base_url: String) {
        let mut urls = self.base_urls.write().unwrap_or_else(|e| e.into_inner());
        if let Some(url) = urls.get_mut(index) {
            *url = base_url;
        }
    }

    /// Every 5xx answer so far.
    pub fn server_errors(&self) -> Vec<ServerError> {
        self.server_errors.lock().unwrap_or_else(|e| e.into_inner()).clone()
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

    fn url(&self, path: &str, via: Option<usize>) -> String {
        let urls = self.base_urls.read().unwrap_or_else(|e| e.into_inner());
        let index = via.unwrap_or_else(|| self.next.fetch_add(1, Ordering::Relaxed)) % urls.len();
        format!("{}{path}", urls[index])
    }

    /// Sends one request; a transport failure (API down, connection cut) is
    /// an error.
    pub async fn send(&self, call: Call<'_>) -> Result<Answer, reqwest::Error> {
        let mut request = self.client.request(call.method.clone(), self.url(call.path, call.via));
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
        if status >= 500 {
            let mut what = format!("{} {} → {status} {body}", call.method, call.path);
            what.truncate(300);
            let error = ServerError { at: Instant::now(), status, what };
            self.server_errors.lock().unwrap_or_else(|e| e.into_inner()).push(error);
        }
        Ok(Answer { status, replayed, body })
    }

    /// Sends until the API answers (it may be restarting) with something
    /// other than 503 (the database may be coming back), at most until
    /// `deadline`. Only for requests that are safe to repeat; a repeat after
    /// a transport error goes to the next API process (unless `via` is set).
    pub async fn send_until_answered(&self, call: Call<'_>, deadline: Instant) -> anyhow::Result<Answer> {
        loop {
            match self.send(call).await {
                Ok(answer) if answer.status == 503 && Instant::now() < deadline && !self.is_aborted() => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
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
