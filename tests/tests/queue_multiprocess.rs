//! Several `kassa-worker` processes on one database: every job runs, none
//! runs twice at the same time, and on SQLite contention for the write lock
//! (SQLITE_BUSY) never kills a worker; on PostgreSQL the claims skip each
//! other's locked rows.

use std::time::Duration;

use anyhow::Context;
use kassa_tests::worker::{QueueDb, WorkerProcess, WorkerSpec};
use serde_json::json;

kassa_tests::black_box! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_run_20000_jobs_each_exactly_once_and_never_concurrently() -> anyhow::Result<()> {
    const JOBS: i64 = 20_000;
    let db = QueueDb::new().await?;
    let payloads: Vec<_> = (0..JOBS)
        // A few jobs take a little while, so executions interleave across processes.
        .map(|key| json!({ "key": key, "sleep_ms": if key % 97 == 0 { 3 } else { 0 } }))
        .collect();
    db.push_probes(&payloads).await?;

    let mut workers = Vec::new();
    for name in ["mp-a", "mp-b", "mp-c"] {
        let mut spec = WorkerSpec::new(name);
        spec.concurrency = 16;
        spec.metrics = true;
        // A short busy timeout makes SQLite hand SQLITE_BUSY back to the
        // store often; the workers must absorb it.
        spec.env.push(("KASSA_DB_BUSY_TIMEOUT_MS".into(), "5".into()));
        workers.push(WorkerProcess::start(&db, spec).await?);
    }

    db.wait_for_state_count("succeeded", JOBS, Duration::from_secs(150)).await?;

    let runs = db.scalar("select count(*) from queue_probe_runs").await?;
    let keys = db.scalar("select count(distinct probe_key) from queue_probe_runs").await?;
    assert_eq!(keys, JOBS, "every job was executed");
    assert_eq!(runs, JOBS, "no job was executed twice");
    let overlapping = db
        .scalar(
            "select count(*) from queue_probe_runs a join queue_probe_runs b
             on a.probe_key = b.probe_key and a.id < b.id
             and a.started_us < b.finished_us and b.started_us < a.finished_us",
        )
        .await?;
    assert_eq!(overlapping, 0, "no job ran twice at the same time");
    let per_worker: Vec<(String, i64)> =
        sqlx::query_as("select worker_id, count(*) from queue_probe_runs group by worker_id")
            .fetch_all(&db.pool)
            .await?;
    assert_eq!(per_worker.len(), 3, "all three processes ran jobs: {per_worker:?}");
    assert_eq!(db.scalar("select count(*) from jobs where status <> 'succeeded'").await?, 0);

    let mut busy_retries = 0.0;
    for worker in &mut workers {
        assert!(worker.is_running(), "{} survived contention:\n{}", worker.worker_id, worker.logs());
        busy_retries += scrape_counter(worker, "kassa_sqlite_busy_retries_total").await?;
    }
    eprintln!("SQLITE_BUSY retries across the three workers: {busy_retries}");
    if kassa_tests::backend::current() == kassa_common::db::Backend::Sqlite {
        assert!(busy_retries > 0.0, "the test exercised SQLITE_BUSY");
    }
    for worker in &workers {
        worker.terminate()?;
    }
    for worker in &mut workers {
        let status = worker.wait_for_exit(Duration::from_secs(20)).await?;
        assert!(status.success(), "{} exited with {status}", worker.worker_id);
    }
    Ok(())
}
}

/// Sums every series of `name` on the worker's `/metrics`.
async fn scrape_counter(worker: &WorkerProcess, name: &str) -> anyhow::Result<f64> {
    let addr = worker.metrics_addr.context("metrics are served")?;
    let body = reqwest::get(format!("http://{addr}/metrics")).await?.text().await?;
    Ok(body
        .lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}
