//! The `queue-bench` command (`tests/src/bin/queue-bench.rs`): throughput
//! and latency of Kassa's job queue on this machine.
//!
//! For each `synchronous` setting, over `--runs` runs: enqueue rate one job
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
    /// Print one JSON document instead of the tables.
    pub json: bool,
}

impl Options {
    /// Measurement runs in all, for the progress display.
    pub fn steps(&self) -> u64 {
        let per_sync = self.runs * (2 + self.processes.len() + usize::from(self.finished_rows > 0) + 2)
            + usize::from(self.finished_rows > 0);
        (per_sync * self.sync.len()) as u64
    }
}

/// Reads the command line (without the program name).
pub fn parse_options(args: impl IntoIterator<Item = String>) -> anyhow::Result<Options> {
    let mut options = Options {
        runs: 3,
        sync: vec![Durability::Normal, Durability::Full],
        drain_jobs: 20_000,
        processes: vec![1, 2, 4],
        concurrency: 64,
        finished_rows: 1_000_000,
        latency_jobs: 200,
        enqueue_jobs: 3_000,
        json: false,
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "--json" {
            options.json = true;
            continue;
        }
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--runs" => options.runs = value.parse()?,
            "--drain-jobs" => options.drain_jobs = value.parse()?,
            "--concurrency" => options.concurrency = value.parse()?,
            "--finished-rows" => options.finished_rows = value.parse()?,
            "--latency-jobs" => options.latency_jobs = value.parse()?,
            "--enqueue-jobs" => options.enqueue_jobs = value.parse()?,
            "--processes" => options.processes = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--sync" => {
                options.sync = value
                    .split(',')
                    .map(|mode| match mode {
                        "normal" => Ok(Durability::Normal),
                        "full" => Ok(Durability::Full),
                        other => bail!("unknown --sync mode {other:?}"),
                    })
                    .collect::<Result<_, _>>()?
            }
            other => bail!("unknown flag {other}"),
        }
    }
    if options.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(options)
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
    /// Runs per figure.
    pub runs: usize,
    /// No-op jobs per drain.
    pub drain_jobs: usize,
    /// Concurrency of each worker process.
    pub concurrency: u32,
    /// The figures, per `synchronous` setting.
    pub by_sync: Vec<SyncResults>,
}

/// The figures of one `synchronous` setting.
#[derive(Clone, Debug, Serialize)]
pub struct SyncResults {
    /// `normal` or `full`.
    pub sync: &'static str,
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
        for SyncResults { sync, figures } in &self.by_sync {
            println!();
            println!("## synchronous={sync}");
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

/// Runs every measurement at one durability, recording each run's value.
async fn measure(options: &Options, durability: Durability, progress: &Progress) -> anyhow::Result<Figures> {
    let sync = sync_name(durability);
    let mut figures = Figures::default();
    let step = |what: &str| progress.advance(format!("synchronous={sync}: {what}"));
    let section = "queue";
    for _ in 0..options.runs {
        let rate = enqueue_one_by_one(durability, options.enqueue_jobs).await?;
        figures.record(section, "enqueue, one job per transaction", "jobs/s", rate);
        step("enqueue one by one");
        let rate = enqueue_in_business_tx(durability, options.enqueue_jobs).await?;
        figures.record(section, "enqueue inside a business transaction", "tx/s", rate);
        step("enqueue in a business transaction");
    }
    for &processes in &options.processes {
        for _ in 0..options.runs {
            let db = QueueDb::with_durability(durability).await?;
            let rate = drain(&db, durability, processes, options.drain_jobs, options.concurrency).await?;
            figures.record(section, format!("drain, {processes} worker process(es)"), "jobs/s", rate);
            step(&format!("drain with {processes} process(es)"));
        }
    }
    if options.finished_rows > 0 {
        let db = QueueDb::with_durability(durability).await?;
        let loading = Instant::now();
        preload_finished(&db, options.finished_rows).await?;
        progress.note(format_args!("preloaded {} finished jobs in {:?}", options.finished_rows, loading.elapsed()));
        step("preload finished jobs");
        for _ in 0..options.runs {
            let rate = drain(&db, durability, 1, options.drain_jobs, options.concurrency).await?;
            let name = format!("drain, 1 process, {} finished rows present", options.finished_rows);
            figures.record(section, name, "jobs/s", rate);
            step("drain over finished rows");
        }
    }
    for (name, in_process) in [("in-process", true), ("across processes", false)] {
        for _ in 0..options.runs {
            let latencies = if in_process {
                latency_in_process(durability, options.latency_jobs).await?
            } else {
                latency_cross_process(durability, options.latency_jobs).await?
            };
            figures.record(section, format!("enqueue→start p50, {name}"), "ms", percentile(&latencies, 0.50));
            figures.record(section, format!("enqueue→start p99, {name}"), "ms", percentile(&latencies, 0.99));
            step(&format!("latency {name}"));
        }
    }
    Ok(figures)
}

/// Runs every measurement `options.runs` times per `synchronous` setting,
/// reporting each finished run to `progress`.
pub async fn run(options: &Options, progress: &Progress) -> anyhow::Result<QueueBenchResults> {
    // Build (or find) the worker binary first, outside every measurement.
    let _ = crate::binaries::binary("kassa-worker");
    let db = QueueDb::new().await?;
    let sqlite_version: String = sqlx::query_scalar("select sqlite_version()").fetch_one(&db.pool).await?;
    drop(db);
    let mut by_sync = Vec::new();
    for &durability in &options.sync {
        let figures = measure(options, durability, progress).await?;
        by_sync.push(SyncResults { sync: sync_name(durability), figures });
    }
    Ok(QueueBenchResults {
        machine: machine(),
        sqlite_version,
        runs: options.runs,
        drain_jobs: options.drain_jobs,
        concurrency: options.concurrency,
        by_sync,
    })
}
