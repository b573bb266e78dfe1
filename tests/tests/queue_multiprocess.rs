//! Several `kassa-worker` processes on one database: every job runs, none
//! runs twice at the same time. On SQLite the processes take turns at the
//! write lock (they never meet SQLITE_BUSY from each other), and SQLITE_BUSY
//! from a writer that is not Kassa's never kills a worker; on PostgreSQL the
//! claims skip each other's locked rows.

use std::time::Duration;

use anyhow::Context;
use kassa_tests::worker::{QueueDb, WorkerProcess, WorkerSpec};
use serde_json::json;

kassa_tests::black_box! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_run_20000_jobs_each_exactly_once_and_never_concurrently() -> anyhow::Result<()> {
    const JOBS: i64 = 20_000;
    // Pushed while another program holds the write lock now and then.
    const LATER_JOBS: i64 = 2_000;
    let sqlite = kassa_tests::backend::current() == kassa_common::db::Backend::Sqlite;
    let db = QueueDb::new().await?;
    let payloads: Vec<_> = (0..JOBS + LATER_JOBS)
        // A few jobs take a little while, so executions interleave across processes.
        .map(|key| json!({ "key": key, "sleep_ms": if key % 97 == 0 { 3 } else { 0 } }))
        .collect();
    let (first, later) = payloads.split_at(JOBS as usize);
    db.push_probes(first).await?;

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
    let busy_among_workers = busy_retries(&mut workers).await?;
    eprintln!("SQLITE_BUSY retries among the three workers alone: {busy_among_workers}");
    if sqlite {
        assert_eq!(busy_among_workers, 0.0, "Kassa's processes take turns at the write lock");
    }

    // Now a writer that is not Kassa's takes SQLite's lock for 20 ms every
    // 30 ms (the test's own connection, outside the turn-taking), and the
    // workers' 5 ms busy timeout runs out against it.
    let foreign = tokio::spawn({
        let db = db.db.clone();
        async move {
            while let Ok(tx) = db.begin_write().await {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if tx.commit().await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    db.push_probes(later).await?;
    db.wait_for_state_count("succeeded", JOBS + LATER_JOBS, Duration::from_secs(150)).await?;
    foreign.abort();

    let runs = db.scalar("select count(*) from queue_probe_runs").await?;
    let keys = db.scalar("select count(distinct probe_key) from queue_probe_runs").await?;
    assert_eq!(keys, JOBS + LATER_JOBS, "every job was executed");
    assert_eq!(runs, JOBS + LATER_JOBS, "no job was executed twice");
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

    let busy_with_foreign_writer = busy_retries(&mut workers).await? - busy_among_workers;
    eprintln!("SQLITE_BUSY retries with a foreign writer: {busy_with_foreign_writer}");
    if sqlite {
        assert!(busy_with_foreign_writer > 0.0, "the test exercised SQLITE_BUSY");
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

/// SQLITE_BUSY retries so far, summed over the workers, each checked to be
/// still running.
async fn busy_retries(workers: &mut [WorkerProcess]) -> anyhow::Result<f64> {
    let mut retries = 0.0;
    for worker in workers {
        assert!(worker.is_running(), "{} survived contention:\n{}", worker.worker_id, worker.logs());
        retries += scrape_counter(worker, "kassa_sqlite_busy_retries_total").await?;
    }
    Ok(retries)
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
