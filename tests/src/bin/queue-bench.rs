//! `queue-bench`: throughput and latency of Kassa's job queue on this machine.
//!
//! ```text
//! cargo run --release -p tests --bin queue-bench -- [--runs 3] [--sync normal,full]
//!     [--drain-jobs 20000] [--processes 1,2,4] [--concurrency 64]
//!     [--finished-rows 1000000] [--latency-jobs 200] [--enqueue-jobs 3000]
//! ```
//!
//! For each `synchronous` setting it prints the median (and range) over
//! `--runs` runs of: enqueue rate one job per transaction and inside a
//! business transaction; drain rate of no-op jobs with 1, 2, 4 `kassa-worker`
//! processes, and with 1 process over a table already holding
//! `--finished-rows` finished jobs; enqueue→start latency p50/p99 at low
//! load, in-process (worker embedded as `kassa-api --with-worker` does) and
//! across processes. Latency runs from the start of the enqueueing
//! transaction to the handler's first instruction.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kassa_common::db::{Durability, begin_write, now_ms};
use kassa_common::queue::{NewJob, enqueue};
use kassa_tests::worker::{QueueDb, WorkerProcess, WorkerSpec, now_us, wait_until};
use kassa_worker::WorkerOptions;
use kassa_worker::jobs::{Noop, Probe};

struct Options {
    runs: usize,
    sync: Vec<Durability>,
    drain_jobs: usize,
    processes: Vec<usize>,
    concurrency: u32,
    finished_rows: u64,
    latency_jobs: i64,
    enqueue_jobs: usize,
}

fn parse_options() -> anyhow::Result<Options> {
    let mut options = Options {
        runs: 3,
        sync: vec![Durability::Normal, Durability::Full],
        drain_jobs: 20_000,
        processes: vec![1, 2, 4],
        concurrency: 64,
        finished_rows: 1_000_000,
        latency_jobs: 200,
        enqueue_jobs: 3_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
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

fn sync_name(durability: Durability) -> &'static str {
    match durability {
        Durability::Normal => "normal",
        Durability::Full => "full",
    }
}

/// Median, min and max of one measurement over the runs.
struct Summary {
    name: String,
    unit: &'static str,
    values: Vec<f64>,
}

impl Summary {
    fn print(&self) {
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        println!(
            "| {:<52} | {:>10.1} | {:>10.1} – {:<10.1} | {} |",
            self.name,
            median,
            sorted[0],
            sorted[sorted.len() - 1],
            self.unit
        );
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn spec(name: &str, durability: Durability, concurrency: u32) -> WorkerSpec {
    let mut spec = WorkerSpec::new(name);
    spec.concurrency = concurrency;
    spec.env.push(("KASSA_SQLITE_SYNCHRONOUS".into(), sync_name(durability).into()));
    spec.env.push(("RUST_LOG".into(), "warn,kassa_worker::runtime=info".into()));
    spec
}

/// Jobs per second pushing one job per transaction, for up to 2 s.
async fn enqueue_one_by_one(durability: Durability, max_jobs: usize) -> anyhow::Result<f64> {
    let db = QueueDb::with_durability(durability).await?;
    let started = Instant::now();
    let mut pushed = 0;
    while pushed < max_jobs && started.elapsed() < Duration::from_secs(2) {
        db.store.push(&NewJob::new(&Noop { key: pushed as i64 })?).await?;
        pushed += 1;
    }
    Ok(pushed as f64 / started.elapsed().as_secs_f64())
}

/// Business transactions per second, each inserting a row and pushing its job.
async fn enqueue_in_business_tx(durability: Durability, max_jobs: usize) -> anyhow::Result<f64> {
    let db = QueueDb::with_durability(durability).await?;
    sqlx::query(
        "create table bench_orders (id integer primary key, total_cents integer not null, created_at integer not null)",
    )
    .execute(&db.pool)
    .await?;
    let started = Instant::now();
    let mut pushed = 0;
    while pushed < max_jobs && started.elapsed() < Duration::from_secs(2) {
        let mut tx = begin_write(&db.pool).await?;
        sqlx::query("insert into bench_orders (total_cents, created_at) values (?1, ?2)")
            .bind(1999)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        enqueue(&mut tx, &NewJob::new(&Noop { key: pushed as i64 })?).await?;
        tx.commit().await?;
        pushed += 1;
    }
    Ok(pushed as f64 / started.elapsed().as_secs_f64())
}

/// Inserts `rows` succeeded jobs, each with one attempt, as a long-running
/// system would have accumulated within its retention period.
async fn preload_finished(db: &QueueDb, rows: u64) -> anyhow::Result<()> {
    let now = now_ms();
    let mut tx = begin_write(&db.pool).await?;
    sqlx::query(
        "with recursive n(i) as (select 1 union all select i + 1 from n where i < ?1)
         insert into jobs (job_type, payload, status, attempts, run_at, lease_token,
                           created_at, updated_at, finished_at)
         select 'noop', '{\"key\":' || i || '}', 'succeeded', 1, ?2, 1, ?2, ?2, ?2 from n",
    )
    .bind(rows as i64)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "insert into job_attempts (job_id, attempt, lease_token, worker_id, started_at,
                                   finished_at, duration_ms, outcome)
         select id, 1, 1, 'preload', ?1, ?1, 0, 'succeeded' from jobs",
    )
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query("pragma wal_checkpoint(truncate)").execute(&db.pool).await?;
    Ok(())
}

/// Jobs per second draining `jobs` no-op jobs with `processes` workers.
async fn drain(
    db: &QueueDb,
    durability: Durability,
    processes: usize,
    jobs: usize,
    concurrency: u32,
) -> anyhow::Result<f64> {
    let mut workers = Vec::new();
    for index in 0..processes {
        workers.push(WorkerProcess::start(db, spec(&format!("bench-{index}"), durability, concurrency)).await?);
    }
    let payloads: Vec<NewJob> =
        (0..jobs).map(|key| NewJob::new(&Noop { key: key as i64 })).collect::<Result<_, _>>()?;
    db.store.push_many(&payloads).await?;
    let started = Instant::now();
    wait_until("the queue is drained", Duration::from_secs(600), || async {
        let busy: bool = sqlx::query_scalar(
            "select exists (select 1 from jobs where status = 'pending')
                 or exists (select 1 from jobs where status = 'running')",
        )
        .fetch_one(&db.pool)
        .await?;
        Ok(!busy)
    })
    .await?;
    let elapsed = started.elapsed();
    for worker in &workers {
        worker.terminate()?;
    }
    for worker in &mut workers {
        worker.wait_for_exit(Duration::from_secs(30)).await?;
    }
    Ok(jobs as f64 / elapsed.as_secs_f64())
}

/// Pushes `jobs` probe jobs 10 ms apart and returns each one's
/// enqueue→start latency in milliseconds, sorted.
async fn push_and_measure(db: &QueueDb, jobs: i64) -> anyhow::Result<Vec<f64>> {
    // Let the worker settle into its idle polling first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut pushed_at = Vec::new();
    for key in 0..jobs {
        let pushed_us = now_us();
        let mut tx = begin_write(&db.pool).await?;
        enqueue(&mut tx, &NewJob::new(&Probe { key, ..Probe::default() })?).await?;
        tx.commit().await?;
        pushed_at.push(pushed_us);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_until("every probe ran", Duration::from_secs(60), || async {
        Ok(db.scalar("select count(*) from queue_probe_runs").await? == jobs)
    })
    .await?;
    let started: Vec<(i64, i64)> =
        sqlx::query_as("select probe_key, started_us from queue_probe_runs").fetch_all(&db.pool).await?;
    let mut latencies: Vec<f64> =
        started.into_iter().map(|(key, started_us)| (started_us - pushed_at[key as usize]) as f64 / 1000.0).collect();
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}

async fn latency_in_process(durability: Durability, jobs: i64) -> anyhow::Result<Vec<f64>> {
    let db = QueueDb::with_durability(durability).await?;
    let registry = kassa_worker::registry_with_all_jobs();
    let options = WorkerOptions {
        concurrency: 8,
        claim_batch: 128,
        shutdown_grace_secs: 5.0,
        worker_id: Some("bench-in-process".into()),
        ..WorkerOptions::defaults()
    }
    .with_data_dir(&db.data_dir());
    let config = options.into_config(&registry)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(kassa_worker::run_with_registry(config, db.pool.clone(), registry, async {
        let _ = stopped.await;
    }));
    let latencies = push_and_measure(&db, jobs).await;
    let _ = stop.send(());
    worker.await??;
    latencies
}

async fn latency_cross_process(durability: Durability, jobs: i64) -> anyhow::Result<Vec<f64>> {
    let db = QueueDb::with_durability(durability).await?;
    let mut worker = WorkerProcess::start(&db, spec("bench-latency", durability, 8)).await?;
    let latencies = push_and_measure(&db, jobs).await;
    worker.terminate()?;
    worker.wait_for_exit(Duration::from_secs(30)).await?;
    latencies
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

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let options = parse_options()?;
    // Build (or find) the worker binary first, outside every measurement.
    let _ = kassa_tests::binaries::binary("kassa-worker");
    let db = QueueDb::new().await?;
    let sqlite_version: String = sqlx::query_scalar("select sqlite_version()").fetch_one(&db.pool).await?;
    drop(db);
    println!("# queue-bench");
    println!();
    println!(
        "machine: {}; SQLite {sqlite_version}; {} runs per figure (median, range); drain of {} no-op jobs, worker concurrency {}",
        machine(),
        options.runs,
        options.drain_jobs,
        options.concurrency
    );
    for &durability in &options.sync {
        let sync = sync_name(durability);
        println!();
        println!("## synchronous={sync}");
        println!();
        println!("| {:<52} | {:>10} | {:^23} | unit |", "measurement", "median", "range");
        println!("|{:-<54}|{:->12}|{:-^25}|------|", "", "", "");
        let mut summaries = Vec::new();

        let mut one_by_one = Vec::new();
        let mut in_business = Vec::new();
        for _ in 0..options.runs {
            one_by_one.push(enqueue_one_by_one(durability, options.enqueue_jobs).await?);
            in_business.push(enqueue_in_business_tx(durability, options.enqueue_jobs).await?);
        }
        summaries.push(Summary { name: "enqueue, one job per transaction".into(), unit: "jobs/s", values: one_by_one });
        summaries.push(Summary {
            name: "enqueue inside a business transaction".into(),
            unit: "tx/s",
            values: in_business,
        });
        for summary in summaries.drain(..) {
            summary.print();
        }

        for &processes in &options.processes {
            let mut rates = Vec::new();
            for _ in 0..options.runs {
                let db = QueueDb::with_durability(durability).await?;
                rates.push(drain(&db, durability, processes, options.drain_jobs, options.concurrency).await?);
            }
            Summary { name: format!("drain, {processes} worker process(es)"), unit: "jobs/s", values: rates }.print();
        }

        if options.finished_rows > 0 {
            let db = QueueDb::with_durability(durability).await?;
            let loading = Instant::now();
            preload_finished(&db, options.finished_rows).await?;
            eprintln!("preloaded {} finished jobs in {:?}", options.finished_rows, loading.elapsed());
            let mut rates = Vec::new();
            for _ in 0..options.runs {
                rates.push(drain(&db, durability, 1, options.drain_jobs, options.concurrency).await?);
            }
            Summary {
                name: format!("drain, 1 process, {} finished rows present", options.finished_rows),
                unit: "jobs/s",
                values: rates,
            }
            .print();
        }

        for (name, in_process) in [("in-process", true), ("across processes", false)] {
            let mut p50 = Vec::new();
            let mut p99 = Vec::new();
            for _ in 0..options.runs {
                let latencies = if in_process {
                    latency_in_process(durability, options.latency_jobs).await?
                } else {
                    latency_cross_process(durability, options.latency_jobs).await?
                };
                p50.push(percentile(&latencies, 0.50));
                p99.push(percentile(&latencies, 0.99));
            }
            Summary { name: format!("enqueue→start p50, {name}"), unit: "ms", values: p50 }.print();
            Summary { name: format!("enqueue→start p99, {name}"), unit: "ms", values: p99 }.print();
        }
    }
    Ok(())
}
