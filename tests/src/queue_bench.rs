//! The `queue-bench` command (`tests/src/bin/queue-bench.rs`): throughput
//! and latency of Kassa's job queue on this machine.
//!
//! For each `synchronous` setting on SQLite, and on PostgreSQL when given a
//! server (`--database postgres://…`, each run on a fresh database created
//! on it and dropped afterwards), over `--runs` runs: enqueue rate one job
//! per transaction and inside a business transaction; drain rate of no-op
//! jobs with 1, 2, 4 `kassa-worker` processes, and with 1 process over a
//! table already holding `--finished-rows` finished jobs; enqueue→start
//! latency p50/p99 at low load, in-process (worker embedded as `kassa-api
//! --with-worker` does) and across processes. Latency runs from the start of
//! the enqueueing transaction to the handler's first instruction. Every
//! run's value is kept in [`QueueBenchResults`], from which both the tables
//! and the `--json` document are rendered.
//!
//! # Layout
//! - [`measurements`]: each measurement, one run at a time.

mod measurements;

use std::time::Instant;

use anyhow::{Context, bail};
use kassa_common::db::Durability;
use serde::Serialize;

use crate::progress::Progress;
use crate::results::Figures;
use crate::worker::QueueDb;
use measurements::{
    drain, enqueue_in_business_tx, enqueue_one_by_one, latency_cross_process, latency_in_process, percentile,
    preload_finished,
};

/// Command-line settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Runs per figure.
    pub runs: usize,
    /// `synchronous` settings to measure, in order.
    pub sync: Vec<Durability>,
    /// No-op jobs per drain.
    pub drain_jobs: usize,
    /// Worker process counts of the drains.
    pub processes: Vec<usize>,
    /// Concurrency of each worker process.
    pub concurrency: u32,
    /// Finished jobs preloaded for the drain over a full table (0: skip it).
    pub finished_rows: u64,
    /// Probe jobs per latency measurement.
    pub latency_jobs: i64,
    /// Most jobs pushed per enqueue measurement (each lasts at most 2 s).
    pub enqueue_jobs: usize,
    /// A PostgreSQL server to measure beside SQLite (`--database`, `--postgres-url`).
    pub postgres_url: Option<String>,
    /// Print one JSON document instead of the tables.
    pub json: bool,
}

/// One column of the report: SQLite at one `synchronous` setting, or PostgreSQL.
#[derive(Clone, Debug)]
pub struct Setup {
    /// `normal`, `full` or `postgres`.
    pub name: &'static str,
    /// SQLite's `synchronous` setting for the bench's own connections and
    /// the workers (ignored on PostgreSQL, which has the server's settings).
    pub durability: Durability,
    /// The PostgreSQL server each measurement creates its database on.
    pub postgres_url: Option<String>,
}

impl Options {
    /// Measurement runs in all, for the progress display.
    pub fn steps(&self) -> u64 {
        let per_setup = self.runs * (2 + self.processes.len() + usize::from(self.finished_rows > 0) + 2)
            + usize::from(self.finished_rows > 0);
        (per_setup * self.setups().len()) as u64
    }

    /// SQLite at each `synchronous` setting, then PostgreSQL if given.
    pub fn setups(&self) -> Vec<Setup> {
        let mut setups: Vec<Setup> = self
            .sync
            .iter()
            .map(|&durability| Setup { name: sync_name(durability), durability, postgres_url: None })
            .collect();
        if let Some(url) = &self.postgres_url {
            setups.push(Setup { name: "postgres", durability: Durability::Normal, postgres_url: Some(url.clone()) });
        }
        setups
    }
}

/// The command line of `queue-bench`; `--help` lists it.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "queue-bench",
    about = "Throughput and latency of Kassa's job queue: enqueue, drain with 1..N worker processes, \
             drain over a full table, enqueue-to-start latency (SQLite, and PostgreSQL with --database)."
)]
pub struct Cli {
    /// Runs per figure; the median and the range are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// SQLite `synchronous` settings to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "normal,full", value_enum)]
    sync: Vec<Durability>,
    /// A PostgreSQL server to measure beside SQLite (a fresh database per measurement).
    #[arg(long, alias = "postgres-url", value_name = "postgres://user@host:port/db")]
    database: Option<String>,
    /// No-op jobs per drain.
    #[arg(long, default_value_t = 20_000)]
    drain_jobs: usize,
    /// Worker process counts of the drains.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    processes: Vec<usize>,
    /// Concurrency of each worker process.
    #[arg(long, default_value_t = 64)]
    concurrency: u32,
    /// Finished jobs preloaded for the drain over a full table (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    finished_rows: u64,
    /// Probe jobs per latency measurement.
    #[arg(long, default_value_t = 200)]
    latency_jobs: i64,
    /// Most jobs pushed per enqueue measurement (each lasts at most 2 s).
    #[arg(long, default_value_t = 3_000)]
    enqueue_jobs: usize,
    /// Print one JSON document with every run's value instead of the tables.
    #[arg(long)]
    json: bool,
}

impl Cli {
    /// The settings these flags give.
    pub fn into_options(self) -> anyhow::Result<Options> {
        if self.runs == 0 {
            bail!("--runs must be at least 1");
        }
        Ok(Options {
            runs: self.runs,
            sync: self.sync,
            drain_jobs: self.drain_jobs,
            processes: self.processes,
            concurrency: self.concurrency,
            finished_rows: self.finished_rows,
            latency_jobs: self.latency_jobs,
            enqueue_jobs: self.enqueue_jobs,
            postgres_url: self.database.as_deref().map(postgres_url).transpose()?,
            json: self.json,
        })
    }
}

/// Reads the command line (without the program name); `--help` is an
/// error carrying the help text.
pub fn parse_options(args: impl IntoIterator<Item = String>) -> anyhow::Result<Options> {
    let cli = <Cli as clap::Parser>::try_parse_from(std::iter::once("queue-bench".to_owned()).chain(args))?;
    cli.into_options()
}

/// Checks that `url` names a PostgreSQL server (SQLite is always measured).
pub fn postgres_url(url: &str) -> anyhow::Result<String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(url.to_owned())
    } else {
        bail!("--database takes a postgres:// URL (SQLite is always measured): {url:?}")
    }
}

/// `normal` or `full`.
pub fn sync_name(durability: Durability) -> &'static str {
    match durability {
        Durability::Normal => "normal",
        Durability::Full => "full",
    }
}

/// Everything one invocation measured: the table and the JSON are both
/// rendered from this.
#[derive(Clone, Debug, Serialize)]
pub struct QueueBenchResults {
    /// CPUs and CPU model.
    pub machine: String,
    /// The SQLite library in use.
    pub sqlite_version: String,
    /// The PostgreSQL server's version and durability settings, if measured.
    pub postgres: Option<String>,
    /// Runs per figure.
    pub runs: usize,
    /// No-op jobs per drain.
    pub drain_jobs: usize,
    /// Concurrency of each worker process.
    pub concurrency: u32,
    /// The figures, per setup (SQLite `synchronous` setting, PostgreSQL).
    pub by_setup: Vec<SetupResults>,
}

/// The figures of one setup.
#[derive(Clone, Debug, Serialize)]
pub struct SetupResults {
    /// `normal` or `full` (SQLite's `synchronous`), or `postgres`.
    pub setup: &'static str,
    /// Every measurement, each with its value in every run.
    pub figures: Figures,
}

impl QueueBenchResults {
    /// The report for a person: a header and a table per setting.
    pub fn print_tables(&self) {
        println!("# queue-bench");
        println!();
        println!(
            "machine: {}; SQLite {}; {} runs per figure (median, range); drain of {} no-op jobs, worker concurrency {}",
            self.machine, self.sqlite_version, self.runs, self.drain_jobs, self.concurrency
        );
        if let Some(postgres) = &self.postgres {
            println!("PostgreSQL: {postgres}");
        }
        for SetupResults { setup, figures } in &self.by_setup {
            println!();
            match *setup {
                "postgres" => println!("## PostgreSQL"),
                sync => println!("## SQLite, synchronous={sync}"),
            }
            for (_, table) in figures.tables() {
                println!();
                print!("{table}");
            }
        }
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cpus} CPUs, {model}")
}

/// Runs every measurement on one setup, recording each run's value.
async fn measure(options: &Options, setup: &Setup, progress: &Progress) -> anyhow::Result<Figures> {
    let name = setup.name;
    let mut figures = Figures::default();
    let step = |what: &str| progress.advance(format!("{name}: {what}"));
    let section = "queue";
    for _ in 0..options.runs {
        let rate = enqueue_one_by_one(setup, options.enqueue_jobs).await?;
        figures.record(section, "enqueue, one job per transaction", "jobs/s", rate);
        step("enqueue one by one");
        let rate = enqueue_in_business_tx(setup, options.enqueue_jobs).await?;
        figures.record(section, "enqueue inside a business transaction", "tx/s", rate);
        step("enqueue in a business transaction");
    }
    for &processes in &options.processes {
        for _ in 0..options.runs {
            let db = fresh_db(setup).await?;
            let rate = drain(&db, setup, processes, options.drain_jobs, options.concurrency).await?;
            figures.record(section, format!("drain, {processes} worker process(es)"), "jobs/s", rate);
            step(&format!("drain with {processes} process(es)"));
        }
    }
    if options.finished_rows > 0 {
        let db = fresh_db(setup).await?;
        let loading = Instant::now();
        preload_finished(&db, options.finished_rows).await?;
        progress.note(format_args!("preloaded {} finished jobs in {:?}", options.finished_rows, loading.elapsed()));
        step("preload finished jobs");
        for _ in 0..options.runs {
            let rate = drain(&db, setup, 1, options.drain_jobs, options.concurrency).await?;
            let name = format!("drain, 1 process, {} finished rows present", options.finished_rows);
            figures.record(section, name, "jobs/s", rate);
            step("drain over finished rows");
        }
    }
    for (name, in_process) in [("in-process", true), ("across processes", false)] {
        for _ in 0..options.runs {
            let latencies = if in_process {
                latency_in_process(setup, options.latency_jobs).await?
            } else {
                latency_cross_process(setup, options.latency_jobs).await?
            };
            figures.record(section, format!("enqueue→start p50, {name}"), "ms", percentile(&latencies, 0.50));
            figures.record(section, format!("enqueue→start p99, {name}"), "ms", percentile(&latencies, 0.99));
            step(&format!("latency {name}"));
        }
    }
    Ok(figures)
}

/// Runs every measurement `options.runs` times per setup,
/// reporting each finished run to `progress`.
pub async fn run(options: &Options, progress: &Progress) -> anyhow::Result<QueueBenchResults> {
    // Build (or find) the worker binary first, outside every measurement.
    let _ = crate::binaries::binary("kassa-worker");
    let db = QueueDb::fresh(None, Durability::Normal).await?;
    let sqlite_version: String = sqlx::query_scalar("select sqlite_version()").fetch_one(&db.pool).await?;
    drop(db);
    let postgres = match &options.postgres_url {
        Some(url) => Some(postgres_settings(url).await?),
        None => None,
    };
    let mut by_setup = Vec::new();
    for setup in options.setups() {
        let figures = measure(options, &setup, progress).await?;
        by_setup.push(SetupResults { setup: setup.name, figures });
    }
    Ok(QueueBenchResults {
        machine: machine(),
        sqlite_version,
        postgres,
        runs: options.runs,
        drain_jobs: options.drain_jobs,
        concurrency: options.concurrency,
        by_setup,
    })
}

/// The server's version and the settings that decide what a commit costs,
/// e.g. `PostgreSQL 15.8 …; fsync=on, synchronous_commit=on, wal_sync_method=fdatasync`.
pub async fn postgres_settings(server_url: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let mut conn = sqlx::postgres::PgConnection::connect(server_url)
        .await
        .with_context(|| "Failed to connect to the PostgreSQL server given with --database")?;
    let version: String = sqlx::query_scalar("select version()").fetch_one(&mut conn).await?;
    let mut settings = Vec::new();
    for name in ["fsync", "synchronous_commit", "wal_sync_method", "shared_buffers", "max_connections"] {
        let value: String = sqlx::query_scalar("select current_setting($1)").bind(name).fetch_one(&mut conn).await?;
        settings.push(format!("{name}={value}"));
    }
    let _ = conn.close().await;
    let version = version.split(" on ").next().unwrap_or(&version).to_owned();
    Ok(format!("{version}; {}", settings.join(", ")))
}

/// A fresh database for one measurement on `setup`.
pub(crate) async fn fresh_db(setup: &Setup) -> anyhow::Result<QueueDb> {
    QueueDb::fresh(setup.postgres_url.as_deref(), setup.durability).await
}
