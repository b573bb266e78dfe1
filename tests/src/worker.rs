//! Worker processes under test: a fresh database ([`QueueDb`], on the
//! test's backend) and real `kassa-worker` processes on it
//! ([`WorkerProcess`]) that can be stopped with SIGTERM or killed with
//! SIGKILL. Waiting is always for a condition with a deadline, never a fixed
//! sleep; every process is killed on drop.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kassa_common::db::Pool;
use kassa_common::db::{Db, Durability};
use kassa_common::queue::{DbJobStore, NewJob};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

use crate::backend::TestDatabase;
use crate::binaries::binary;

/// Polls `check` every 20 ms until it returns true; fails after `timeout`
/// with `what` in the message.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Microseconds since the Unix epoch, the unit of `queue_probe_runs`.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_micros()).unwrap_or(i64::MAX))
}

/// A migrated database on the test's backend (an SQLite file in a
/// temporary directory, or a PostgreSQL database of its own).
pub struct QueueDb {
    /// The open database.
    pub db: Db,
    /// Its pool, for pushing jobs and checking results.
    pub pool: Pool,
    /// The job store on it.
    pub store: DbJobStore,
    database: TestDatabase,
    dir: tempfile::TempDir,
}

impl QueueDb {
    /// A fresh database (`synchronous=normal`, which the workers use too).
    pub async fn new() -> anyhow::Result<QueueDb> {
        QueueDb::with_durability(Durability::Normal).await
    }

    /// A fresh database with this `synchronous` setting for the test's own
    /// connections on SQLite (workers get theirs from `KASSA_SQLITE_SYNCHRONOUS`).
    pub async fn with_durability(durability: Durability) -> anyhow::Result<QueueDb> {
        let dir = tempfile::tempdir().context("Failed to create a temp dir")?;
        let database = TestDatabase::create(dir.path()).await;
        QueueDb::open(database, dir, durability).await
    }

    /// A fresh database on the PostgreSQL server of `server_url` when
    /// given, else an SQLite file with this `synchronous` setting for the
    /// caller's own connections (the benchmarks' choice, from their
    /// command line rather than the test's backend).
    pub async fn fresh(postgres_server_url: Option<&str>, durability: Durability) -> anyhow::Result<QueueDb> {
        let dir = tempfile::tempdir().context("Failed to create a temp dir")?;
        let database = match postgres_server_url {
            Some(server_url) => TestDatabase::on_postgres_server(server_url).await,
            None => TestDatabase::sqlite_in(dir.path()),
        };
        QueueDb::open(database, dir, durability).await
    }

    async fn open(database: TestDatabase, dir: tempfile::TempDir, durability: Durability) -> anyhow::Result<QueueDb> {
        let args = kassa_common::db::DbArgs {
            database_url: Some(database.url().to_owned()),
            ..kassa_common::db::DbArgs::in_dir(dir.path(), durability)
        };
        let db = args.open().await.context("Failed to create the test database")?;
        let store = DbJobStore::new(db.clone());
        Ok(QueueDb { pool: db.pool().clone(), db, store, database, dir })
    }

    /// `KASSA_DATABASE_URL` for processes on this database.
    pub fn url(&self) -> &str {
        self.database.url()
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Pushes `probe` jobs with these JSON payloads, in one transaction.
    pub async fn push_probes(&self, payloads: &[serde_json::Value]) -> anyhow::Result<Vec<i64>> {
        let jobs = payloads.iter().map(|payload| NewJob::raw("probe", payload)).collect::<Result<Vec<_>, _>>()?;
        let pushed = self.store.push_many(&jobs).await?;
        Ok(pushed.into_iter().map(|pushed| pushed.job_id().0).collect())
    }

    /// The first column of the first row of `sql`, as an integer.
    pub async fn scalar(&self, sql: &'static str) -> anyhow::Result<i64> {
        let value: Option<i64> =
            sqlx::query_scalar(sql).fetch_one(&self.pool).await.with_context(|| format!("Failed to run {sql}"))?;
        Ok(value.unwrap_or(0))
    }

    /// How many jobs are in `state`.
    pub async fn count_in_state(&self, state: &str) -> anyhow::Result<i64> {
        let count: i64 =
            sqlx::query_scalar("select count(*) from jobs where status = $1").bind(state).fetch_one(&self.pool).await?;
        Ok(count)
    }

    /// Waits until `count` jobs are in `state`.
    pub async fn wait_for_state_count(&self, state: &str, count: i64, timeout: Duration) -> anyhow::Result<()> {
        wait_until(&format!("{count} jobs are {state}"), timeout, || async {
            Ok(self.count_in_state(state).await? == count)
        })
        .await
    }
}

/// How to start a worker.
#[derive(Clone, Debug)]
pub struct WorkerSpec {
    /// The worker id (`KASSA_WORKER_ID`).
    pub worker_id: String,
    /// `KASSA_WORKER_CONCURRENCY`.
    pub concurrency: u32,
    /// `KASSA_LEASE_SECS`.
    pub lease_secs: f64,
    /// `KASSA_SHUTDOWN_GRACE_SECS`.
    pub shutdown_grace_secs: f64,
    /// Serve metrics on a free port.
    pub metrics: bool,
    /// More environment variables.
    pub env: Vec<(String, String)>,
    /// More arguments.
    pub args: Vec<String>,
}

impl WorkerSpec {
    /// Defaults for tests: concurrency 8, 30 s lease, 10 s grace.
    pub fn new(worker_id: &str) -> WorkerSpec {
        WorkerSpec {
            worker_id: worker_id.to_owned(),
            concurrency: 8,
            lease_secs: 30.0,
            shutdown_grace_secs: 10.0,
            metrics: false,
            env: Vec::new(),
            args: Vec::new(),
        }
    }
}

/// A running `kassa-worker` process; killed on drop.
pub struct WorkerProcess {
    child: Child,
    /// Its worker id.
    pub worker_id: String,
    /// Where it serves `/metrics`, if asked to.
    pub metrics_addr: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
}

/// The `kassa-worker` command for `db` with `spec`, not yet started.
pub fn worker_command(db: &QueueDb, spec: &WorkerSpec) -> Command {
    let mut command = Command::new(binary("kassa-worker"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("KASSA_LOG_FORMAT", "text")
        .env("KASSA_DATA_DIR", db.data_dir())
        .env("KASSA_DATABASE_URL", db.url())
        .env("KASSA_SQLITE_SYNCHRONOUS", "normal")
        .env("KASSA_WORKER_ID", &spec.worker_id)
        .env("KASSA_WORKER_CONCURRENCY", spec.concurrency.to_string())
        .env("KASSA_LEASE_SECS", spec.lease_secs.to_string())
        .env("KASSA_SHUTDOWN_GRACE_SECS", spec.shutdown_grace_secs.to_string())
        .envs(spec.env.iter().map(|(key, value)| (key, value)))
        .args(&spec.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if spec.metrics {
        command.env("KASSA_WORKER_METRICS_BIND", "127.0.0.1:0");
    }
    command
}

impl WorkerProcess {
    /// Starts a worker and waits until it has logged its start.
    pub async fn start(db: &QueueDb, spec: WorkerSpec) -> anyhow::Result<WorkerProcess> {
        let mut child = worker_command(db, &spec).spawn().context("Failed to start kassa-worker")?;
        let stderr = child.stderr.take().context("stderr is piped")?;
        let log = Arc::new(Mutex::new(String::new()));
        let logged = Arc::new(Notify::new());
        tokio::spawn({
            let log = log.clone();
            let logged = logged.clone();
            async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(mut log) = log.lock() {
                        log.push_str(&line);
                        log.push('\n');
                    }
                    logged.notify_waiters();
                }
                logged.notify_waiters();
            }
        });
        let mut worker = WorkerProcess { child, worker_id: spec.worker_id.clone(), metrics_addr: None, log };
        let started = format!("worker {} starting", spec.worker_id);
        worker.wait_for_log(&started, Duration::from_secs(30)).await?;
        if spec.metrics {
            let logs = worker.logs();
            let addr = logs
                .lines()
                .find_map(|line| line.split("metrics listening on ").nth(1))
                .context("the worker logged no metrics address")?;
            worker.metrics_addr = Some(addr.trim().parse().context("metrics address")?);
        }
        Ok(worker)
    }

    /// Everything the worker has logged so far.
    pub fn logs(&self) -> String {
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub async fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.logs().contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("kassa-worker exited ({status}) before logging {needle:?}:\n{}", self.logs());
            }
            if Instant::now() >= deadline {
                bail!("kassa-worker did not log {needle:?} within {timeout:?}:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) -> anyhow::Result<()> {
        let pid = self.child.id().context("the worker has already exited")?;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .context("Failed to run kill")?;
        if !status.success() {
            bail!("kill -TERM {pid} failed");
        }
        Ok(())
    }

    /// Sends SIGKILL and reaps the process.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("Failed to kill the worker")
    }

    /// Waits for the process to exit.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => bail!("kassa-worker did not exit within {timeout:?}:\n{}", self.logs()),
        }
    }
}
