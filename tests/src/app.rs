//! `TestApp`: a real `kassa-api` process on a free port against a fresh
//! temporary SQLite file, with one method per endpoint the tests use.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::binaries::binary;
use crate::process::ChildProcess;

/// The admin bootstrap secret every test app is started with.
pub const ADMIN_SECRET: &str = "test-admin-secret-0123456789";
/// A password that passes validation.
pub const PASSWORD: &str = "correct horse battery";

/// A response's status, headers and body (JSON when it parses, else a string).
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON (`Value::String` with the raw text when not JSON).
    pub body: Value,
}

impl Reply {
    /// A header's value as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        self.body
    }

    /// Asserts a problem+json error with this status and returns it.
    #[track_caller]
    pub fn expect_problem(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.body);
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "errors are problem documents");
        assert_eq!(self.body["status"], status, "problem status member");
        assert!(self.body["title"].is_string() && self.body["type"].is_string());
        self.body
    }
}

/// The `id` member of a JSON object (a product, an order, a user).
#[track_caller]
pub fn id(value: &Value) -> i64 {
    value["id"].as_i64().expect("the value has a numeric id")
}

/// Settings for starting an app.
#[derive(Clone, Debug, Default)]
pub struct AppOptions {
    /// Extra environment variables for the process.
    pub env: Vec<(String, String)>,
    /// Reuse this data directory instead of a fresh one.
    pub data_dir: Option<PathBuf>,
}

impl AppOptions {
    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// A running API with its own data directory.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The process.
    pub process: ChildProcess,
    /// The data directory (the SQLite file lives here).
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// The environment a test app gets unless a test overrides it.
fn default_env(data_dir: &Path) -> Vec<(String, String)> {
    [
        ("KASSA_BIND", "127.0.0.1:0".to_owned()),
        ("KASSA_DATA_DIR", data_dir.display().to_string()),
        ("KASSA_ADMIN_SECRET", ADMIN_SECRET.to_owned()),
        ("KASSA_SQLITE_SYNCHRONOUS", "normal".to_owned()),
        ("KASSA_AUTH_RATE_PER_MIN", "100000".to_owned()),
        ("KASSA_AUTH_BURST", "100000".to_owned()),
        ("KASSA_LOG_FORMAT", "text".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

impl TestApp {
    /// Starts an API with default test settings.
    pub async fn spawn() -> Self {
        Self::spawn_with(AppOptions::default()).await
    }

    /// Starts an API with extra settings.
    pub async fn spawn_with(options: AppOptions) -> Self {
        let (tmp, data_dir) = match options.data_dir {
            Some(dir) => (None, dir),
            None => {
                let tmp = tempfile::tempdir().expect("temp dir");
                let dir = tmp.path().to_path_buf();
                (Some(tmp), dir)
            }
        };
        let mut command = Command::new(binary("kassa-api"));
        command.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command.envs(default_env(&data_dir)).envs(options.env.iter().map(|(k, v)| (k, v)));
        let mut process = ChildProcess::spawn("kassa-api", command);
        let addr = process.wait_for_line("listening on ", Duration::from_secs(60));
        let addr = addr.split_whitespace().next().expect("an address follows 'listening on'");
        Self {
            base_url: format!("http://{addr}"),
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
            process,
            data_dir,
            _tmp: tmp,
        }
    }

    /// The SQLite file's URL.
    pub fn database_url(&self) -> String {
        format!("sqlite://{}", self.data_dir.join("kassa.db").display())
    }

    /// Sends a request; `body` as JSON when given.
    pub async fn request(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base_url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        Self::reply(request.send().await.expect("request sent")).await
    }

    /// Turns a response into a [`Reply`].
    pub async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, headers, body }
    }

    /// GET.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(Method::GET, path, token, None).await
    }

    /// POST with a JSON body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.request(Method::POST, path, token, Some(body)).await
    }

    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.request(Method::PUT, path, token, Some(body)).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.request(Method::DELETE, path, token, None).await
    }

    /// Registers a customer.
    pub async fn register(&self, username: &str) -> Reply {
        let body = json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD});
        self.post("/auth/register", None, &body).await
    }

    /// Logs in and returns the token.
    pub async fn login(&self, username: &str) -> String {
        let body = json!({"username": username, "password": PASSWORD});
        let reply = self.post("/auth/login", None, &body).await.expect(200);
        reply["access_token"].as_str().expect("access_token").to_owned()
    }

    /// Registers a customer and returns (user id, token).
    pub async fn customer(&self, username: &str) -> (i64, String) {
        let user = self.register(username).await.expect(201);
        let id = user["id"].as_i64().expect("user id");
        (id, self.login(username).await)
    }

    /// Registers an admin and returns (user id, token).
    pub async fn admin(&self, username: &str) -> (i64, String) {
        let body = json!({"username": username, "email": format!("{username}@example.com"),
                          "password": PASSWORD, "secret_key": ADMIN_SECRET});
        let user = self.post("/auth/register-admin", None, &body).await.expect(201);
        let id = user["id"].as_i64().expect("user id");
        (id, self.login(username).await)
    }

    /// Starts a `kassa-worker` process on this app's database with test
    /// settings (2 s leases, fast retries) and waits until it runs.
    pub fn spawn_worker(&self, worker_id: &str, extra_env: &[(&str, &str)]) -> ChildProcess {
        let mut command = Command::new(binary("kassa-worker"));
        command.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command
            .env("KASSA_DATA_DIR", &self.data_dir)
            .env("KASSA_DATABASE_URL", self.database_url())
            .env("KASSA_SQLITE_SYNCHRONOUS", "normal")
            .env("KASSA_WORKER_ID", worker_id)
            .env("KASSA_LEASE_SECS", "2")
            .env("KASSA_LOG_FORMAT", "text")
            .env("RUST_LOG", "info")
            .envs(extra_env.iter().copied());
        let mut process = ChildProcess::spawn(worker_id, command);
        process.wait_for_line(&format!("worker {worker_id} starting"), Duration::from_secs(60));
        process
    }

    /// Polls `GET /orders/{id}` as `token` until the order has `status`, or
    /// panics with the last body after `timeout`.
    pub async fn wait_for_status(&self, order_id: i64, status: &str, token: &str, timeout: Duration) -> Value {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let order = self.get(&format!("/orders/{order_id}"), Some(token)).await.expect(200);
            if order["status"] == status {
                return order;
            }
            assert!(std::time::Instant::now() < deadline, "order {order_id} never reached {status}: {order}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs a `select count(*)`-style query on the app's database.
    pub async fn count(&self, sql: &'static str) -> i64 {
        let pool = self.db().await;
        let value = sqlx::query_scalar(sql).fetch_one(&pool).await.expect("count query");
        pool.close().await;
        value
    }

    /// A product's stock as the catalogue shows it.
    pub async fn stock(&self, product_id: i64) -> i64 {
        self.get(&format!("/products/{product_id}"), None).await.expect(200)["stock"].as_i64().expect("stock")
    }

    /// Opens the app's database directly, for invariant checks.
    pub async fn db(&self) -> sqlx::SqlitePool {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.data_dir.join("kassa.db"))
            .busy_timeout(Duration::from_secs(10));
        sqlx::sqlite::SqlitePoolOptions::new().max_connections(2).connect_with(options).await.expect("database opens")
    }

    /// Waits until no order is pending and no job waits or runs, then checks
    /// every invariant; panics with the violations.
    pub async fn assert_settled(&self, timeout: Duration) {
        let pool = self.db().await;
        let deadline = std::time::Instant::now() + timeout;
        while !crate::invariants::quiescent(&pool).await {
            assert!(std::time::Instant::now() < deadline, "work still pending after {timeout:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let violations = crate::invariants::check(&pool).await;
        assert!(violations.is_empty(), "invariants broken: {violations:#?}");
        pool.close().await;
        crate::admin::assert_stock_audit_clean(self).await;
    }

    /// Creates a product as `admin_token` and returns it.
    pub async fn product(&self, admin_token: &str, name: &str, price_cents: i64, stock: i64, category: &str) -> Value {
        let body = json!({"name": name, "description": format!("A fine {name}"), "price_cents": price_cents,
                          "stock": stock, "category": category});
        self.post("/products/", Some(admin_token), &body).await.expect(201)
    }
}
