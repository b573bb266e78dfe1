//! Leases across processes: a running job's lease is kept alive by
//! heartbeats, and a job held by a worker killed with SIGKILL is picked up by
//! another worker within seconds of the lease expiring.

use std::time::{Duration, Instant};

use kassa_tests::worker::{QueueDb, WorkerProcess, WorkerSpec};
use serde_json::json;

const LEASE_SECS: f64 = 2.0;

fn spec(name: &str) -> WorkerSpec {
    let mut spec = WorkerSpec::new(name);
    spec.lease_secs = LEASE_SECS;
    spec
}

kassa_tests::black_box! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_a_killed_worker_are_rescued_soon_after_the_lease_expires() -> anyhow::Result<()> {
    let db = QueueDb::new().await?;
    // The first attempt hangs, as if the handler were stuck mid-way.
    let payloads: Vec<_> = (0..5).map(|key| json!({ "key": key, "hang_attempts": 1 })).collect();
    db.push_probes(&payloads).await?;
    let mut doomed = WorkerProcess::start(&db, spec("doomed")).await?;
    db.wait_for_state_count("running", 5, Duration::from_secs(10)).await?;

    // While the doomed worker lives, its heartbeats keep the leases: a second
    // worker does not take the jobs even after several lease lengths.
    let mut survivor = WorkerProcess::start(&db, spec("survivor")).await?;
    tokio::time::sleep(Duration::from_secs_f64(LEASE_SECS * 2.5)).await;
    let held_by_doomed =
        db.scalar("select count(*) from jobs where status = 'running' and lease_owner = 'doomed'").await?;
    assert_eq!(held_by_doomed, 5, "heartbeats kept the leases alive");
    assert_eq!(db.scalar("select count(*) from queue_probe_runs").await?, 0);

    doomed.kill().await?;
    let killed_at = Instant::now();
    db.wait_for_state_count("succeeded", 5, Duration::from_secs(20)).await?;
    let rescued_after = killed_at.elapsed();
    assert!(
        rescued_after < Duration::from_secs_f64(LEASE_SECS + 4.0),
        "rescued {rescued_after:?} after the kill, lease {LEASE_SECS} s"
    );

    let history: Vec<(i64, String, String)> =
        sqlx::query_as("select attempt, outcome, worker_id from job_attempts order by job_id, id")
            .fetch_all(&db.pool)
            .await?;
    let expected: Vec<(i64, String, String)> = (0..5)
        .flat_map(|_| {
            [(1, "abandoned".to_owned(), "doomed".to_owned()), (2, "succeeded".to_owned(), "survivor".to_owned())]
        })
        .collect();
    assert_eq!(history, expected, "the killed attempt and the rescue are both recorded");
    assert!(survivor.is_running());
    survivor.terminate()?;
    assert!(survivor.wait_for_exit(Duration::from_secs(15)).await?.success());
    Ok(())
}
}

kassa_tests::black_box! {
/// A lone worker draining a stream of short jobs never reports a lost
/// lease: a heartbeat that meets a job whose ack has just committed finds
/// it finished, and that is not a loss (it used to be logged as one, in
/// bursts at every heartbeat under load).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_worker_loses_no_lease_while_draining() -> anyhow::Result<()> {
    const JOBS: i64 = 3_000;
    let db = QueueDb::new().await?;
    let payloads: Vec<_> = (0..JOBS).map(|key| json!({ "key": key })).collect();
    db.push_probes(&payloads).await?;
    // A one-second lease: heartbeats every third of a second, many of
    // them while acks are in flight.
    let mut spec = WorkerSpec::new("lone");
    spec.lease_secs = 1.0;
    let worker = WorkerProcess::start(&db, spec).await?;
    db.wait_for_state_count("succeeded", JOBS, Duration::from_secs(120)).await?;
    let logs = worker.logs();
    let lost = logs.matches("lease lost to another worker").count() + logs.matches("result discarded").count();
    assert_eq!(lost, 0, "a lone worker reported {lost} lost leases:\n{logs}");
    assert_eq!(db.scalar("select count(*) from job_attempts").await?, JOBS, "every job ran once");
    worker.terminate()?;
    Ok(())
}
}
