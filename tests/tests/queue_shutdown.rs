//! Graceful shutdown: on SIGTERM a worker stops claiming, lets running jobs
//! finish (or, after the grace period, hands them back claimable at once),
//! and exits 0.

use std::time::Duration;

use kassa_tests::worker::{QueueDb, WorkerProcess, WorkerSpec};
use serde_json::json;

kassa_tests::black_box! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_jobs_finish_leaves_the_rest_and_exits_zero() -> anyhow::Result<()> {
    let db = QueueDb::new().await?;
    let payloads: Vec<_> = (0..20).map(|key| json!({ "key": key, "sleep_ms": 1500 })).collect();
    db.push_probes(&payloads).await?;
    let mut spec = WorkerSpec::new("graceful");
    spec.concurrency = 4;
    let mut worker = WorkerProcess::start(&db, spec).await?;
    db.wait_for_state_count("running", 4, Duration::from_secs(10)).await?;

    worker.terminate()?;
    let status = worker.wait_for_exit(Duration::from_secs(15)).await?;
    assert!(status.success(), "exit status {status}:\n{}", worker.logs());

    assert_eq!(db.count_in_state("running").await?, 0, "nothing is left leased");
    assert_eq!(db.count_in_state("succeeded").await?, 4, "the running jobs finished");
    assert_eq!(db.count_in_state("pending").await?, 16, "no new job was started");
    assert_eq!(db.scalar("select count(*) from jobs where status = 'pending' and attempts > 0").await?, 0);
    Ok(())
}
}

kassa_tests::black_box! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_still_running_after_the_grace_period_is_handed_back_at_once() -> anyhow::Result<()> {
    let db = QueueDb::new().await?;
    db.push_probes(&[json!({ "key": 1, "hang_attempts": 1 })]).await?;
    let mut spec = WorkerSpec::new("impatient");
    spec.shutdown_grace_secs = 0.5;
    let mut worker = WorkerProcess::start(&db, spec).await?;
    db.wait_for_state_count("running", 1, Duration::from_secs(10)).await?;

    worker.terminate()?;
    let status = worker.wait_for_exit(Duration::from_secs(10)).await?;
    assert!(status.success(), "exit status {status}:\n{}", worker.logs());

    let (status, attempts, owner): (String, i64, Option<String>) =
        sqlx::query_as("select status, attempts, lease_owner from jobs").fetch_one(&db.pool).await?;
    assert_eq!((status.as_str(), attempts, owner), ("pending", 0, None), "handed back, attempt returned");
    let outcome: String = sqlx::query_scalar("select outcome from job_attempts").fetch_one(&db.pool).await?;
    assert_eq!(outcome, "released");

    // Claimable at once: no lease to wait out.
    let _next = WorkerProcess::start(&db, WorkerSpec::new("next")).await?;
    db.wait_for_state_count("running", 1, Duration::from_secs(2)).await?;
    Ok(())
}
}
