//! The run's database: an SQLite file in the run's directory, or a fresh
//! database the run creates on a PostgreSQL server (`--database URL`) and
//! drops at the end unless asked to keep it; the URL each host reaches it
//! at; and the "database is lost" of issue 14 — every Kassa session of the
//! database terminated by the server, as an administrator or a failover
//! would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use kassa_common::db::Pool;
use kassa_common::db::scratch::{create_postgres_database, drop_postgres_database};
use kassa_common::db::{Backend, DbArgs, Durability};
use sqlx::Connection;
use tokio::sync::watch;

use super::hosts::Host;
use super::rng::Rng;

/// A database on a PostgreSQL server that this run created.
struct ServerDatabase {
    /// The server's URL as given (any database on it).
    server_url: String,
    /// The created database's name.
    name: String,
    /// The created database's URL, as this machine reaches it.
    url: url::Url,
    /// The server's address, for relays into the hosts.
    addr: SocketAddr,
    keep: AtomicBool,
}

/// The database of one run.
pub struct RunDatabase {
    sqlite_file: PathBuf,
    server: Option<ServerDatabase>,
}

impl RunDatabase {
    /// An SQLite file `kassa.db` in `data_dir`.
    pub fn sqlite(data_dir: &Path) -> RunDatabase {
        RunDatabase { sqlite_file: data_dir.join("kassa.db"), server: None }
    }

    /// A fresh database on the PostgreSQL server of `server_url`.
    pub async fn postgres(server_url: &str, data_dir: &Path) -> anyhow::Result<RunDatabase> {
        let parsed = url::Url::parse(server_url).context("--database is not a URL")?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            bail!("--database must be a postgres:// or postgresql:// URL");
        }
        let host = parsed.host_str().context("--database names no host")?.to_owned();
        let port = parsed.port().unwrap_or(5432);
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .with_context(|| format!("Failed to resolve the PostgreSQL server {host}:{port}"))?
            .next()
            .with_context(|| format!("{host}:{port} resolves to no address"))?;
        let server = server_url.to_owned();
        // The scratch helper panics when the server does not answer: turn that into an error.
        let (name, url) = tokio::spawn(async move { create_postgres_database(&server).await })
            .await
            .map_err(|_| anyhow!("could not create a database on the PostgreSQL server {host}:{port}"))?;
        let url = url::Url::parse(&url).context("the created database's URL")?;
        Ok(RunDatabase {
            sqlite_file: data_dir.join("kassa.db"),
            server: Some(ServerDatabase {
                server_url: server_url.to_owned(),
                name,
                url,
                addr,
                keep: AtomicBool::new(false),
            }),
        })
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        if self.server.is_some() { Backend::Postgres } else { Backend::Sqlite }
    }

    /// The PostgreSQL server's address, which the hosts need relayed.
    pub fn server_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(|server| server.addr)
    }

    /// The PostgreSQL database's name.
    pub fn name(&self) -> Option<&str> {
        self.server.as_ref().map(|server| server.name.as_str())
    }

    /// `KASSA_DATABASE_URL` for processes on `host`.
    pub fn url_for(&self, host: &Host) -> String {
        match &self.server {
            Some(server) => {
                let reached = host.reach(server.addr);
                let mut url = server.url.clone();
                // Setting an IP host and a port on a postgres:// URL cannot fail.
                let _ = url.set_ip_host(reached.ip());
                let _ = url.set_port(Some(reached.port()));
                url.to_string()
            }
            None => self.sqlite_url(),
        }
    }

    /// What it is, for the report (never a password).
    pub fn describe(&self) -> String {
        match &self.server {
            Some(server) => format!("PostgreSQL {} database {}", server.addr, server.name),
            None => format!("SQLite {}", self.sqlite_file.display()),
        }
    }

    fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.sqlite_file.display())
    }

    /// Opens a pool for the harness's own reads (progress and checks), as
    /// this machine reaches the database; migrates it.
    pub async fn open_pool(&self, data_dir: &Path) -> anyhow::Result<Pool> {
        let database_url = match &self.server {
            Some(server) => server.url.to_string(),
            None => self.sqlite_url(),
        };
        let args = DbArgs { database_url: Some(database_url), ..DbArgs::in_dir(data_dir, Durability::Normal) };
        let db = args.open().await.context("Failed to open the run's database")?;
        Ok(db.pool().clone())
    }

    /// Keeps the PostgreSQL database after the run; returns its URL (password hidden).
    pub fn keep(&self) -> Option<String> {
        let server = self.server.as_ref()?;
        server.keep.store(true, Ordering::Relaxed);
        let mut shown = server.url.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        Some(shown.to_string())
    }

    /// Terminates every session of the database but this one; returns how
    /// many were terminated.
    pub async fn cut_sessions(&self) -> anyhow::Result<u64> {
        let server = self.server.as_ref().context("only a PostgreSQL database can be cut")?;
        let mut admin = sqlx::postgres::PgConnection::connect(server.url.as_str())
            .await
            .context("Failed to connect to cut the sessions")?;
        let cut: Vec<bool> = sqlx::query_scalar(
            "select pg_terminate_backend(pid) from pg_stat_activity
             where datname = current_database() and pid <> pg_backend_pid()",
        )
        .fetch_all(&mut admin)
        .await
        .context("Failed to terminate the sessions")?;
        let _ = admin.close().await;
        Ok(cut.into_iter().filter(|terminated| *terminated).count() as u64)
    }
}

impl Drop for RunDatabase {
    fn drop(&mut self) {
        let Some(server) = self.server.take() else { return };
        if server.keep.load(Ordering::Relaxed) {
            return;
        }
        // Drop runs outside async code: drop the database from a thread with its own runtime.
        let dropped = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                runtime.block_on(drop_postgres_database(&server.server_url, &server.name));
            }
        });
        let _ = dropped.join();
    }
}

/// One cut: when it began and how many sessions it terminated.
#[derive(Clone, Copy, Debug)]
pub struct Cut {
    /// Just before the terminate query was sent.
    pub at: Instant,
    /// Sessions terminated.
    pub sessions: u64,
}

/// The cuts made so far.
#[derive(Debug, Default)]
pub struct CutLog {
    cuts: Mutex<Vec<Cut>>,
}

impl CutLog {
    /// Every cut, in order.
    pub fn cuts(&self) -> Vec<Cut> {
        self.cuts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many cuts were made.
    pub fn count(&self) -> usize {
        self.cuts.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The latest cut at or before `at`, if any.
    pub fn last_before(&self, at: Instant) -> Option<Cut> {
        self.cuts().into_iter().rev().find(|cut| cut.at <= at)
    }
}

/// Cuts every session of `database` about every `every` (uniform in
/// 0.5×–1.5×) until `stop` turns true. A failed cut is an error: the
/// server itself went away.
pub async fn run_cutter(
    database: Arc<RunDatabase>,
    every: Duration,
    mut rng: Rng,
    log: Arc<CutLog>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        let wait = every.mul_f64(0.5 + rng.unit());
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return Ok(());
        }
        let at = Instant::now();
        let sessions = database.cut_sessions().await?;
        log.cuts.lock().unwrap_or_else(|e| e.into_inner()).push(Cut { at, sessions });
    }
}
