//! `TestApp`: a real `kassa-api` process on a free port against a fresh
//! database (an SQLite file in a temporary directory, or a database of its
//! own on PostgreSQL — see [`crate::backend`]), with one method per
//! endpoint the tests use.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use kassa_common::db::Db;

use crate::backend::TestDatabase;
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
#[derive(Clone, Default)]
pub struct AppOptions {
    /// Extra environment variables for the process.
    pub env: Vec<(String, String)>,
    /// Reuse this data directory instead of a fresh one.
    pub data_dir: Option<PathBuf>,
    /// Reuse this database (e.g. another app's, to restart on its data)
    /// instead of a fresh one.
    pub database: Option<Arc<TestDatabase>>,
    /// Start the process with this open-file limit, soft and hard (so it
    /// cannot raise it), as a small machine or container would.
    pub open_files_limit: Option<u64>,
}

impl AppOptions {
    /// Options for apps that restart on the same data: the directory `dir`
    /// and one database (on the test's backend) shared by all of them.
    pub async fn persistent(dir: &Path) -> AppOptions {
        let database = Arc::new(TestDatabase::create(dir).await);
        AppOptions { data_dir: Some(dir.to_path_buf()), database: Some(database), ..Default::default() }
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Starts the process under an open-file limit of `limit`.
    pub fn open_files_limit(mut self, limit: u64) -> Self {
        self.open_files_limit = Some(limit);
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
    /// The database; dropped after the process (fields drop in order) and
    /// after every other app started on it.
    pub database: Arc<TestDatabase>,
    /// The token of the admin made with the bootstrap secret, which makes
    /// every further admin (the secret works only once).
    first_admin: tokio::sync::Mutex<Option<String>>,
    _tmp: Option<tempfile::TempDir>,
}

/// The environment a test app gets unless a test overrides it.
fn default_env(data_dir: &Path, database: &TestDatabase) -> Vec<(String, String)> {
    [
        ("KASSA_BIND", "127.0.0.1:0".to_owned()),
        ("KASSA_DATA_DIR", data_dir.display().to_string()),
        ("KASSA_DATABASE_URL", database.url().to_owned()),
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
        let database = match options.database {
            Some(database) => database,
            None => Arc::new(TestDatabase::create(&data_dir).await),
        };
        let mut command = match options.open_files_limit {
            // The shell lowers the limit, then becomes the API (`exec`).
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell.arg("-c").arg(format!("ulimit -n {limit} && exec \"$0\"")).arg(binary("kassa-api"));
                shell
            }
            None => Command::new(binary("kassa-api")),
        };
        command.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command.envs(default_env(&data_dir, &database)).envs(options.env.iter().map(|(k, v)| (k, v)));
        let mut process = ChildProcess::spawn("kassa-api", command);
        let addr = process.wait_for_line("listening on ", Duration::from_secs(60));
        let addr = addr.split_whitespace().next().expect("an address follows 'listening on'");
        Self {
            base_url: format!("http://{addr}"),
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
            process,
            data_dir,
            database,
            first_admin: tokio::sync::Mutex::new(None),
            _tmp: tmp,
        }
    }

    /// The database's URL (`sqlite://…` or `postgres://…`).
    pub fn database_url(&self) -> String {
        self.database.url().to_owned()
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

    /// Registers an admin and returns (user id, token): the first with the
    /// bootstrap secret, the others through `POST /admin/users` as the first.
    pub async fn admin(&self, username: &str) -> (i64, String) {
        self.admin_account(username, false).await
    }

    /// Like [`TestApp::admin`]; with `existing_ok`, an admin already
    /// registered under `username` is logged in instead.
    pub async fn admin_account(&self, username: &str, existing_ok: bool) -> (i64, String) {
        let mut first_admin = self.first_admin.lock().await;
        let email = format!("{username}@example.com");
        let reply = match first_admin.as_deref() {
            None => {
                let body =
                    json!({"username": username, "email": email, "password": PASSWORD, "secret_key": ADMIN_SECRET});
                self.post("/auth/register-admin", None, &body).await
            }
            Some(token) => {
                let body = json!({"username": username, "email": email, "password": PASSWORD, "role": "admin"});
                self.post("/admin/users", Some(token), &body).await
            }
        };
        let id = match reply.status.as_u16() {
            201 => reply.body["id"].as_i64().expect("user id"),
            409 if existing_ok => 0,
            // An app restarted on another app's data: the first admin's
            // token is not known here, so make the admin as an operator would.
            403 if first_admin.is_none() => self.create_admin_command(username, existing_ok),
            _ => panic!("admin {username} was not created: {} {}", reply.status, reply.body),
        };
        let token = self.login(username).await;
        if first_admin.is_none() {
            *first_admin = Some(token.clone());
        }
        (id, token)
    }

    /// Makes an admin with `kassa-api create-admin` on this app's database;
    /// returns its id (0 if it existed and `existing_ok`).
    fn create_admin_command(&self, username: &str, existing_ok: bool) -> i64 {
        let output = Command::new(binary("kassa-api"))
            .args(["create-admin", "--username", username, "--email", &format!("{username}@example.com")])
            .env("KASSA_DATA_DIR", &self.data_dir)
            .env("KASSA_DATABASE_URL", self.database_url())
            .env("KASSA_ADMIN_PASSWORD", PASSWORD)
            .output()
            .expect("create-admin runs");
        let text = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let error = String::from_utf8_lossy(&output.stderr);
            assert!(existing_ok && error.contains("already registered"), "create-admin {username} failed: {error}");
            return 0;
        }
        text.rsplit("(id ").next().and_then(|rest| rest.trim_end().trim_end_matches(')').parse().ok()).unwrap_or(0)
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
        let db = self.db().await;
        let value = sqlx::query_scalar(sql).fetch_one(db.pool()).await.expect("count query");
        db.close().await;
        value
    }

    /// A product's stock as the catalogue shows it.
    pub async fn stock(&self, product_id: i64) -> i64 {
        self.get(&format!("/products/{product_id}"), None).await.expect(200)["stock"].as_i64().expect("stock")
    }

    /// Opens the app's database directly, for invariant checks and for
    /// tests that push jobs or read tables themselves.
    pub async fn db(&self) -> Db {
        self.database.open(&self.data_dir).await
    }

    /// Waits until no order is pending and no job waits or runs, then checks
    /// every invariant; panics with the violations.
    pub async fn assert_settled(&self, timeout: Duration) {
        let db = self.db().await;
        let deadline = std::time::Instant::now() + timeout;
        while !crate::invariants::quiescent(db.pool()).await {
            assert!(std::time::Instant::now() < deadline, "work still pending after {timeout:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let violations = crate::invariants::check(db.pool()).await;
        assert!(violations.is_empty(), "invariants broken: {violations:#?}");
        db.close().await;
        crate::admin::assert_stock_audit_clean(self).await;
    }

    /// Creates a product as `admin_token` and returns it.
    pub async fn product(&self, admin_token: &str, name: &str, price_cents: i64, stock: i64, category: &str) -> Value {
        let body = json!({"name": name, "description": format!("A fine {name}"), "price_cents": price_cents,
                          "stock": stock, "category": category});
        self.post("/products/", Some(admin_token), &body).await.expect(201)
    }
}
