//! Each queue measurement, one run at a time, on a fresh SQLite file.

use std::time::{Duration, Instant};

use kassa_common::db::{Durability, now_ms};
use kassa_common::queue::{NewJob, enqueue};
use kassa_worker::WorkerOptions;
use kassa_worker::jobs::{Noop, Probe};

use super::sync_name;
use crate::worker::{QueueDb, WorkerProcess, WorkerSpec, now_us, wait_until};

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub(super) fn spec(name: &str, durability: Durability, concurrency: u32) -> WorkerSpec {
    let mut spec = WorkerSpec::new(name);
    spec.concurrency = concurrency;
    spec.env.push(("KASSA_SQLITE_SYNCHRONOUS".into(), sync_name(durability).into()));
    spec.env.push(("RUST_LOG".into(), "warn,kassa_worker::runtime=info".into()));
    spec
}

/// Jobs per second pushing one job per transaction, for up to 2 s.
pub(super) async fn enqueue_one_by_one(durability: Durability, max_jobs: usize) -> anyhow::Result<f64> {
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
pub(super) async fn enqueue_in_business_tx(durability: Durability, max_jobs: usize) -> anyhow::Result<f64> {
    let db = QueueDb::with_durability(durability).await?;
    sqlx::query(
        "create table bench_orders (id integer primary key, total_cents integer not null, created_at integer not null)",
    )
    .execute(&db.pool)
    .await?;
    let started = Instant::now();
    let mut pushed = 0;
    while pushed < max_jobs && started.elapsed() < Duration::from_secs(2) {
        let mut tx = db.db.begin_write().await?;
        sqlx::query("insert into bench_orders (total_cents, created_at) values ($1, $2)")
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
pub(super) async fn preload_finished(db: &QueueDb, rows: u64) -> anyhow::Result<()> {
    let now = now_ms();
    let mut tx = db.db.begin_write().await?;
    sqlx::query(
        "with recursive n(i) as (select 1 union all select i + 1 from n where i < $1)
         insert into jobs (job_type, payload, status, attempts, run_at, lease_token,
                           created_at, updated_at, finished_at)
         select 'noop', '{\"key\":' || i || '}', 'succeeded', 1, $2, 1, $2, $2, $2 from n",
    )
    .bind(rows as i64)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "insert into job_attempts (job_id, attempt, lease_token, worker_id, started_at,
                                   finished_at, duration_ms, outcome)
         select id, 1, 1, 'preload', $1, $1, 0, 'succeeded' from jobs",
    )
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query("pragma wal_checkpoint(truncate)").execute(&db.pool).await?;
    Ok(())
}

/// Jobs per second draining `jobs` no-op jobs with `processes` workers.
pub(super) async fn drain(
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
        let mut tx = db.db.begin_write().await?;
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

pub(super) async fn latency_in_process(durability: Durability, jobs: i64) -> anyhow::Result<Vec<f64>> {
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
    let worker = tokio::spawn(kassa_worker::run_with_registry(config, db.db.clone(), registry, async {
        let _ = stopped.await;
    }));
    let latencies = push_and_measure(&db, jobs).await;
    let _ = stop.send(());
    worker.await??;
    latencies
}

pub(super) async fn latency_cross_process(durability: Durability, jobs: i64) -> anyhow::Result<Vec<f64>> {
    let db = QueueDb::with_durability(durability).await?;
    let mut worker = WorkerProcess::start(&db, spec("bench-latency", durability, 8)).await?;
    let latencies = push_and_measure(&db, jobs).await;
    worker.terminate()?;
    worker.wait_for_exit(Duration::from_secs(30)).await?;
    latencies
}
