//! Failing jobs: transient failures retry with persisted backoff (surviving a
//! worker crash), a database outage spends no attempt, permanent ones and
//! exhausted ones go dead with their error and can be re-queued,
//! undecodable payloads go dead without harming the worker, and every
//! attempt is recorded.

use std::time::Duration;

use kassa_common::queue::{JobId, JobStore};
use kassa_tests::worker::{QueueDb, WorkerProcess, WorkerSpec, wait_until};
use serde_json::json;

type Attempt = (i64, String, Option<String>, i64, i64);

async fn attempts(db: &QueueDb, job_id: i64) -> anyhow::Result<Vec<Attempt>> {
    Ok(sqlx::query_as(
        "select attempt, outcome, error, started_at, finished_at
         from job_attempts where job_id = $1 order by id",
    )
    .bind(job_id)
    .fetch_all(&db.pool)
    .await?)
}

fn outcomes(attempts: &[Attempt]) -> Vec<(i64, &str)> {
    attempts.iter().map(|a| (a.0, a.1.as_str())).collect()
}

/// A worker that gives probes three attempts, 10 ms of backoff apart.
fn three_quick_attempts(name: &str) -> WorkerSpec {
    let mut spec = WorkerSpec::new(name);
    spec.env.push(("KASSA_RETRY_BASE_MS".into(), "10".into()));
    spec.env.push(("KASSA_JOB_MAX_ATTEMPTS_BY_TYPE".into(), "probe=3".into()));
    spec
}

kassa_tests::black_box! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_with_growing_backoff_and_every_attempt_is_recorded() -> anyhow::Result<()> {
    let db = QueueDb::new().await?;
    let mut spec = WorkerSpec::new("retrier");
    spec.env.push(("KASSA_RETRY_BASE_MS".into(), "200".into()));
    let _worker = WorkerProcess::start(&db, spec).await?;
    let ids = db.push_probes(&[json!({ "key": 1, "fail_attempts": 2 })]).await?;
    db.wait_for_state_count("succeeded", 1, Duration::from_secs(10)).await?;

    let history = attempts(&db, ids[0]).await?;
    assert_eq!(outcomes(&history), vec![(1, "retry"), (2, "retry"), (3, "succeeded")]);
    assert_eq!(history[0].2.as_deref(), Some("transient failure: probe told to fail attempt 1"));
    // Full jitter keeps each delay within [half, all] of 200 ms · 2^(n-1).
    let first_gap = history[1].3 - history[0].4;
    let second_gap = history[2].3 - history[1].4;
    assert!(first_gap >= 100, "first retry waited {first_gap} ms");
    assert!(second_gap >= 200, "second retry waited {second_gap} ms");
    assert!(history.iter().all(|a| a.4 >= a.3), "attempts have a start and an end");
    Ok(())
}
}

kassa_tests::black_box! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_retry_survives_a_worker_crash() -> anyhow::Result<()> {
    let db = QueueDb::new().await?;
    let mut spec = WorkerSpec::new("crashy");
    spec.env.push(("KASSA_RETRY_BASE_MS".into(), "3000".into()));
    let mut worker = WorkerProcess::start(&db, spec.clone()).await?;
    let ids = db.push_probes(&[json!({ "key": 1, "fail_attempts": 1 })]).await?;
    wait_until("the first attempt failed", Duration::from_secs(10), || async {
        Ok(attempts(&db, ids[0]).await?.len() == 1)
    })
    .await?;
    worker.kill().await?;

    let (status, run_at): (String, i64) = sqlx::query_as("select status, run_at from jobs").fetch_one(&db.pool).await?;
    let now = kassa_common::db::now_ms();
    assert_eq!(status, "pending");
    assert!(run_at - now >= 1000, "the retry is scheduled in the database, {} ms ahead", run_at - now);

    spec.worker_id = "restarted".into();
    let _restarted = WorkerProcess::start(&db, spec).await?;
    db.wait_for_state_count("succeeded", 1, Duration::from_secs(10)).await?;
    let history = attempts(&db, ids[0]).await?;
    assert_eq!(outcomes(&history), vec![(1, "retry"), (2, "succeeded")]);
    assert!(history[1].3 >= run_at, "the retry did not run before its time");
    Ok(())
}
}

kassa_tests::black_box! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_and_exhausted_failures_go_dead_with_their_error_and_can_be_requeued() -> anyhow::Result<()> {
    let db = QueueDb::new().await?;
    let _worker = WorkerProcess::start(&db, three_quick_attempts("mortal")).await?;
    let ids = db
        .push_probes(&[json!({ "key": 1, "fail_permanently": true }), json!({ "key": 2, "fail_attempts": 100 })])
        .await?;
    db.wait_for_state_count("dead", 2, Duration::from_secs(10)).await?;

    let permanent = db.store.get_job(JobId(ids[0])).await?.expect("job");
    assert_eq!(permanent.last_error.as_deref(), Some("permanent failure: probe told to fail permanently"));
    assert_eq!(outcomes(&attempts(&db, ids[0]).await?), vec![(1, "dead")]);
    let exhausted = db.store.get_job(JobId(ids[1])).await?.expect("job");
    assert_eq!(
        exhausted.last_error.as_deref(),
        Some("attempts exhausted (3/3): transient failure: probe told to fail attempt 3")
    );
    assert_eq!(outcomes(&attempts(&db, ids[1]).await?), vec![(1, "retry"), (2, "retry"), (3, "dead")]);

    db.store.requeue_dead(JobId(ids[0]), "ops@example.com", Some("try again")).await?;
    wait_until("the re-queued job ran again", Duration::from_secs(10), || async {
        Ok(attempts(&db, ids[0]).await?.len() == 2)
    })
    .await?;
    db.wait_for_state_count("dead", 2, Duration::from_secs(5)).await?;
    assert_eq!(db.scalar("select count(*) from job_operator_actions where action = 'requeue'").await?, 1);
    Ok(())
}
}

kassa_tests::black_box! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_does_not_use_up_a_jobs_attempts() -> anyhow::Result<()> {
    let db = QueueDb::new().await?;
    let _worker = WorkerProcess::start(&db, three_quick_attempts("patient")).await?;
    // Five runs find the database unreachable, more than the three attempts allowed.
    let ids = db.push_probes(&[json!({ "key": 1, "unavailable_runs": 5 })]).await?;
    db.wait_for_state_count("succeeded", 1, Duration::from_secs(10)).await?;

    let history = attempts(&db, ids[0]).await?;
    let mut expected = vec![(1, "retry"); 5];
    expected.push((1, "succeeded"));
    assert_eq!(outcomes(&history), expected);
    let error = history[0].2.as_deref().unwrap_or_default();
    assert!(error.contains("pool timed out") && error.ends_with("(not counted)"), "{error}");
    Ok(())
}
}

kassa_tests::black_box! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_payload_goes_dead_and_the_worker_keeps_working() -> anyhow::Result<()> {
    let db = QueueDb::new().await?;
    let mut worker = WorkerProcess::start(&db, WorkerSpec::new("sturdy")).await?;
    let poison = db.push_probes(&[json!("not a probe"), json!({ "key": "not a number" })]).await?;
    db.wait_for_state_count("dead", 2, Duration::from_secs(10)).await?;
    for id in poison {
        let job = db.store.get_job(JobId(id)).await?.expect("job");
        let error = job.last_error.unwrap_or_default();
        assert!(error.contains("payload does not decode as a probe job"), "{error}");
    }
    db.push_probes(&[json!({ "key": 7 })]).await?;
    db.wait_for_state_count("succeeded", 1, Duration::from_secs(10)).await?;
    assert!(worker.is_running(), "{}", worker.logs());
    Ok(())
}
}
