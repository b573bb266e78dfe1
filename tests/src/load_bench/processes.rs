//! What the phases share: the HTTP target with its customers' tokens,
//! starting and stopping processes, their CPU time and lost leases, and
//! small database helpers.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use kassa_common::db::Pool;
use serde_json::json;

use crate::app::TestApp;
use crate::load::LoadReport;
use crate::process::ChildProcess;
use crate::worker::wait_until;

/// What the load tasks share: the client, the address, the tokens.
pub(super) struct Target {
    pub(super) client: reqwest::Client,
    pub(super) base_url: String,
    pub(super) tokens: Vec<String>,
    pub(super) hot_product_id: i64,
}

impl Target {
    /// A target at `base_url` with a client keeping `clients` idle connections.
    pub(super) fn new(
        clients: usize,
        base_url: String,
        tokens: Vec<String>,
        hot_product_id: i64,
    ) -> anyhow::Result<Target> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .timeout(Duration::from_secs(60))
            .build()
            .context("Failed to build the HTTP client")?;
        Ok(Target { client, base_url, tokens, hot_product_id })
    }

    /// Places an order for one unit of the hot product; returns the order id.
    pub(super) async fn place_order(&self, user: usize) -> anyhow::Result<i64> {
        let body = json!({"items": [{"product_id": self.hot_product_id, "quantity": 1}]});
        let response = self
            .client
            .post(format!("{}/orders/", self.base_url))
            .bearer_auth(&self.tokens[user % self.tokens.len()])
            .json(&body)
            .send()
            .await
            .context("Failed to send POST /orders/")?;
        let status = response.status();
        let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let text = response.text().await.context("Failed to read the answer of POST /orders/")?;
        if status.as_u16() != 202 {
            bail!("POST /orders/ answered {status}: {text}");
        }
        location
            .as_deref()
            .and_then(|location| location.strip_prefix("/orders/"))
            .and_then(|id| id.parse().ok())
            .with_context(|| format!("POST /orders/ answered 202 without a usable Location ({location:?})"))
    }

    /// GETs `path` as `token` and reads the whole body; fails unless 200.
    pub(super) async fn get(&self, path: &str, token: Option<&str>) -> anyhow::Result<()> {
        let mut request = self.client.get(format!("{}{path}", self.base_url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| format!("Failed to send GET {path}"))?;
        let status = response.status();
        let body = response.bytes().await.with_context(|| format!("Failed to read the answer of GET {path}"))?;
        if status.as_u16() != 200 {
            bail!("GET {path} answered {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }
}

/// CPU time (user + system) a process has used, in milliseconds.
/// `/proc/PID/stat` counts in USER_HZ, which Linux fixes at 100 per second.
pub(super) fn cpu_ms(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("Failed to read /proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).context("Failed to parse /proc/PID/stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<f64> {
        fields.get(index).context("Failed to find the CPU times in /proc/PID/stat")?.parse::<f64>().map_err(Into::into)
    };
    Ok((ticks(11)? + ticks(12)?) * 10.0)
}

/// Runs a panicking `TestApp` helper in a task so its panic becomes an error.
pub(super) async fn catch<T: Send + 'static>(
    what: &str,
    future: impl Future<Output = T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::spawn(future).await.map_err(|error| match error.try_into_panic() {
        Ok(payload) => anyhow!(
            "{what} failed: {}",
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default()
        ),
        Err(error) => anyhow!("{what} failed: {error}"),
    })
}

/// The section whose figures are printed per run.
pub(super) const LOST_LEASES: &str = "lost leases (kassa_leases_lost_total per run; target 0)";

/// The two warnings a worker logs when it loses a lease (each also counts
/// in `kassa_leases_lost_total`).
const LEASE_LOST_WARNINGS: [&str; 2] = [
    "lease lost to another worker; this run's result will be discarded",
    "result discarded: the lease expired and another worker holds the job",
];

/// A worker process and where it serves its metrics.
pub(super) struct Worker {
    pub(super) process: ChildProcess,
    metrics_url: String,
}

/// Leases lost by a process, from its `/metrics` at `metrics_url`; the
/// count of its lost-lease warnings if the scrape fails or shows fewer.
pub(super) async fn lost_leases(process: &ChildProcess, metrics_url: &str) -> f64 {
    let logged =
        process.lines().iter().filter(|line| LEASE_LOST_WARNINGS.iter().any(|warning| line.contains(warning))).count()
            as f64;
    let scraped = async {
        let text = reqwest::get(metrics_url).await.ok()?.text().await.ok()?;
        let exposition = crate::prometheus::parse(&text).ok()?;
        exposition.has("kassa_leases_lost_total").then(|| exposition.sum("kassa_leases_lost_total", &[]))
    };
    match scraped.await {
        Some(counted) => counted.max(logged),
        None => logged,
    }
}

/// Records the leases the `workers` lost during `phase`.
pub(super) async fn record_lost_leases(figures: &mut crate::results::Figures, phase: &str, workers: &[Worker]) {
    let mut lost = 0.0;
    for worker in workers {
        lost += lost_leases(&worker.process, &worker.metrics_url).await;
    }
    figures.record(LOST_LEASES, phase, "leases", lost);
}

/// Starts a worker process on the app's database at this durability, with
/// its metrics on a free port.
pub(super) async fn start_worker(
    app: &Arc<TestApp>,
    worker_id: String,
    sync: &'static str,
    extra_env: &[(String, String)],
) -> anyhow::Result<Worker> {
    let app = Arc::clone(app);
    let what = format!("starting worker {worker_id}");
    let mut env: Vec<(String, String)> = [
        ("KASSA_SQLITE_SYNCHRONOUS", sync),
        ("KASSA_SANDBOX_FAILURE_RATE", "0"),
        ("KASSA_SANDBOX_LATENCY_MS", "0"),
        ("KASSA_WORKER_METRICS_BIND", "127.0.0.1:0"),
        ("RUST_LOG", "warn,kassa_worker::runtime=info,kassa_worker::telemetry=info"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    env.extend(extra_env.iter().cloned());
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
        let mut process = app.spawn_worker(&worker_id, &env);
        let addr = process.wait_for_line("metrics listening on ", Duration::from_secs(30));
        Worker { process, metrics_url: format!("http://{}/metrics", addr.trim()) }
    })
    .await
    .map_err(|error| anyhow!("{what} failed: {error}"))
}

/// Stops worker processes (see [`stop`]).
pub(super) fn stop_workers(workers: Vec<Worker>) {
    let mut processes: Vec<ChildProcess> = workers.into_iter().map(|worker| worker.process).collect();
    stop(&mut processes);
}

/// Stops processes with SIGTERM and waits for them to exit (SIGKILL on drop otherwise).
pub(super) fn stop(processes: &mut [ChildProcess]) {
    for process in processes.iter() {
        process.signal("TERM");
    }
    for process in processes.iter_mut() {
        if process.wait_exit(Duration::from_secs(30)).is_none() {
            eprintln!("a process did not stop within 30 s after SIGTERM; killing it");
            process.kill();
        }
    }
}

/// The first column of the first row of `sql`, as an integer (0 for NULL).
pub(super) async fn scalar(pool: &Pool, sql: &str) -> anyhow::Result<i64> {
    let value: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .with_context(|| format!("Failed to run {sql}"))?;
    Ok(value.unwrap_or(0))
}

/// Fails loudly when a load phase had failed requests.
pub(super) fn check_failures<T>(phase: &str, report: &LoadReport<T>) -> anyhow::Result<()> {
    if report.failures > 0 {
        bail!("{phase}: {} requests failed, e.g. {:?}", report.failures, report.failure_samples);
    }
    Ok(())
}

/// Waits until no order from `first_order` on is pending; `what` names them.
pub(super) async fn wait_orders_left_pending(pool: &Pool, first_order: i64, what: &str) -> anyhow::Result<()> {
    let pending_sql = format!("select count(*) from orders where id >= {first_order} and status = 'pending'");
    wait_until(&format!("every {what} left pending"), Duration::from_secs(900), || async {
        Ok(scalar(pool, &pending_sql).await? == 0)
    })
    .await
}

/// How the orders from `first_order` on were confirmed.
pub(super) struct Confirmations {
    /// Accepted → confirmed of each confirmed order, in ms, sorted.
    pub(super) latencies_ms: Vec<f64>,
    /// When the first of them was accepted (Unix ms).
    pub(super) first_created: i64,
    /// When the last of them was confirmed (Unix ms).
    pub(super) last_confirmed: i64,
}

impl Confirmations {
    /// Reads them; `what` names the orders in errors.
    pub(super) async fn read(pool: &Pool, first_order: i64, what: &str) -> anyhow::Result<Confirmations> {
        let mut latencies_ms: Vec<f64> = sqlx::query_scalar::<_, i64>(
            "select h.at - o.created_at from orders o
             join order_status_history h on h.order_id = o.id and h.to_status = 'confirmed'
             where o.id >= $1",
        )
        .bind(first_order)
        .fetch_all(pool)
        .await
        .with_context(|| format!("Failed to read the {what} confirmation latencies"))?
        .into_iter()
        .map(|ms| ms as f64)
        .collect();
        latencies_ms.sort_by(f64::total_cmp);
        let first_created =
            scalar(pool, &format!("select min(created_at) from orders where id >= {first_order}")).await?;
        let last_confirmed = scalar(
            pool,
            &format!(
                "select max(at) from order_status_history where order_id >= {first_order} and to_status = 'confirmed'"
            ),
        )
        .await?;
        Ok(Confirmations { latencies_ms, first_created, last_confirmed })
    }

    /// `orders` per second from the first acceptance to the last confirmation.
    pub(super) fn rate_per_sec(&self, orders: f64) -> f64 {
        orders * 1000.0 / (self.last_confirmed - self.first_created).max(1) as f64
    }
}

/// Waits until no job is pending or running.
pub(super) async fn wait_quiescent(pool: &Pool) -> anyhow::Result<()> {
    wait_until("every job finished", Duration::from_secs(900), || async {
        Ok(scalar(pool, "select count(*) from jobs where status in ('pending', 'running')").await? == 0)
    })
    .await
}
