//! Store tests: each guarantee the queue gives, checked at the store's
//! interface on a real database — every test body runs on SQLite and, when
//! `KASSA_TEST_POSTGRES_URL` is set, on PostgreSQL.

use std::time::Duration;

use super::*;
use crate::db::scratch::ScratchDb;
use crate::db::{DbArgs, Durability, now_ms};

fn job(key: u32) -> NewJob {
    NewJob::raw("probe", &serde_json::json!({ "key": key })).expect("payload")
}

fn claim_request(worker: &str, limit: u32, lease: Duration) -> ClaimRequest {
    ClaimRequest { worker_id: worker.to_owned(), job_types: vec!["probe".to_owned()], limit, lease }
}

fn succeeded(job: &ClaimedJob, worker: &str) -> Ack {
    Ack {
        lease: job.lease,
        attempt: job.attempt,
        worker_id: worker.to_owned(),
        started_at_ms: now_ms(),
        finished_at_ms: now_ms(),
        resolution: Resolution::Succeeded,
    }
}

async fn state(store: &DbJobStore, id: JobId) -> JobState {
    store.get_job(id).await.expect("get").expect("exists").state
}

crate::on_both_backends! {
async fn enqueue_commits_and_rolls_back_with_the_callers_transaction(scratch) {
    let store = DbJobStore::new(scratch.db.clone());
    let mut tx = scratch.db.begin_write().await.expect("begin");
    enqueue(&mut tx, &job(1)).await.expect("enqueue");
    tx.rollback().await.expect("rollback");
    let listed = store.list_jobs(&JobFilter { limit: 10, ..JobFilter::default() }).await.expect("list");
    assert!(listed.is_empty(), "a rolled back push leaves no job");

    let mut tx = scratch.db.begin_write().await.expect("begin");
    let pushed = enqueue(&mut tx, &job(2)).await.expect("enqueue");
    tx.commit().await.expect("commit");
    assert!(matches!(pushed, Enqueued::Created(_)));
    assert_eq!(state(&store, pushed.job_id()).await, JobState::Pending);
}
}

crate::on_both_backends! {
async fn claims_take_the_oldest_orders_jobs_first(scratch) {
    // Orders 2..=6 are waiting for their first step when order 1, placed
    // before them, gets its next one: that goes first, whatever was pushed
    // before it. Jobs of no order go before every order's.
    let store = DbJobStore::new(scratch.db.clone());
    let first_steps: Vec<NewJob> = (2..=6).map(|order| job(order).for_order(i64::from(order))).collect();
    store.push_many(&first_steps).await.expect("push");
    let next_step = store.push(&job(1).for_order(1)).await.expect("push").job_id();
    let orderless = store.push(&job(0)).await.expect("push").job_id();
    let due_later = store.push(&NewJob { run_at_ms: Some(now_ms() + 60_000), ..job(9).for_order(1) }).await.expect("push");
    let claimed = store.claim(&claim_request("a", 3, Duration::from_secs(30))).await.expect("claim");
    let ids: Vec<JobId> = claimed.iter().map(|job| job.lease.job_id).collect();
    assert_eq!(ids[..2], [orderless, next_step], "the orderless job, then the oldest order's step");
    let third: serde_json::Value = serde_json::from_str(&claimed[2].payload).expect("payload");
    assert_eq!(third, serde_json::json!({ "key": 2 }), "then order 2's first step");
    assert!(!ids.contains(&due_later.job_id()), "a job not yet due waits whatever its order");
}
}

crate::on_both_backends! {
async fn a_second_push_with_the_same_dedup_key_is_a_no_op(scratch) {
    let store = DbJobStore::new(scratch.db.clone());
    let first = store.push(&job(1).dedup_key("order-7")).await.expect("push");
    let second = store.push(&job(2).dedup_key("order-7")).await.expect("push");
    let other_type = store.push(&NewJob::raw("other", &1).expect("payload").dedup_key("order-7")).await.expect("push");
    assert!(matches!(first, Enqueued::Created(_)));
    assert_eq!(second, Enqueued::Duplicate(first.job_id()));
    assert!(matches!(other_type, Enqueued::Created(_)), "keys are unique per job type");
    let listed = store.list_jobs(&JobFilter { limit: 10, ..JobFilter::default() }).await.expect("list");
    assert_eq!(listed.len(), 2);
}
}

crate::on_both_backends! {
async fn a_claim_gives_each_job_once_with_an_owner_expiry_and_token(scratch) {
    let store = DbJobStore::new(scratch.db.clone());
    let jobs: Vec<NewJob> = (0..10).map(job).collect();
    store.push_many(&jobs).await.expect("push");
    let lease = Duration::from_secs(30);
    let first = store.claim(&claim_request("a", 6, lease)).await.expect("claim");
    let second = store.claim(&claim_request("b", 6, lease)).await.expect("claim");
    assert_eq!(first.len(), 6);
    assert_eq!(second.len(), 4, "only the unclaimed jobs are left");
    let mut ids: Vec<_> = first.iter().chain(&second).map(|job| job.lease.job_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10, "no job was handed out twice");
    assert!(first.windows(2).all(|pair| pair[0].lease.job_id < pair[1].lease.job_id), "oldest first");
    let summary = store.get_job(first[0].lease.job_id).await.expect("get").expect("exists");
    assert_eq!(summary.state, JobState::Running);
    assert_eq!(summary.lease_owner.as_deref(), Some("a"));
    let expires = summary.lease_expires_at_ms.expect("lease expiry");
    assert!(expires > now_ms() + 25_000);
    assert_eq!(first[0].attempt, 1);
    assert!(first[0].lease.token > 0);
    assert!(store.claim(&claim_request("c", 6, lease)).await.expect("claim").is_empty());
}
}

crate::on_both_backends! {
async fn a_worker_whose_lease_was_taken_over_cannot_overwrite_the_new_holders_result(scratch) {
    let store = DbJobStore::new(scratch.db.clone());
    let id = store.push(&job(1)).await.expect("push").job_id();
    let stale = store.claim(&claim_request("a", 1, Duration::from_millis(1))).await.expect("claim");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let rescued = store.rescue_expired(now_ms()).await.expect("rescue");
    assert_eq!(rescued.len(), 1);
    assert_eq!(rescued[0].lost_by, "a");
    let current = store.claim(&claim_request("b", 1, Duration::from_secs(30))).await.expect("claim");
    assert_eq!(current[0].lease.job_id, id);
    assert!(current[0].lease.token > stale[0].lease.token, "every claim gets a larger token");
    assert_eq!(current[0].attempt, 2);

    // The old holder reports a failure after losing the lease: refused.
    let stale_ack = Ack { resolution: Resolution::Dead { error: "late".into() }, ..succeeded(&stale[0], "a") };
    assert_eq!(store.ack(&[stale_ack]).await.expect("ack"), vec![AckResult::LeaseLost]);
    assert_eq!(
        store.extend_leases(&[stale[0].lease], now_ms() + 60_000).await.expect("extend"),
        vec![stale[0].lease],
        "nor can it extend the lease"
    );
    assert_eq!(state(&store, id).await, JobState::Running);
    assert_eq!(store.ack(&[succeeded(&current[0], "b")]).await.expect("ack"), vec![AckResult::Applied]);
    assert_eq!(state(&store, id).await, JobState::Succeeded);
    let attempts = store.attempts(id).await.expect("attempts");
    let outcomes: Vec<_> = attempts.iter().map(|a| (a.attempt, a.outcome, a.worker_id.as_str())).collect();
    assert_eq!(outcomes, vec![(1, AttemptOutcome::Abandoned, "a"), (2, AttemptOutcome::Succeeded, "b")]);
}
}

crate::on_both_backends! {
async fn heartbeats_keep_a_lease_and_expired_leases_are_rescued(scratch) {
    let store = DbJobStore::new(scratch.db.clone());
    store.push_many(&[job(1), job(2)]).await.expect("push");
    let claimed = store.claim(&claim_request("a", 2, Duration::from_millis(300))).await.expect("claim");
    // Extend only the first job's lease; the second one's worker "died".
    let lost = store.extend_leases(&[claimed[0].lease], now_ms() + 30_000).await.expect("extend");
    assert!(lost.is_empty());
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        store.claim(&claim_request("b", 2, Duration::from_secs(30))).await.expect("claim").is_empty(),
        "an expired lease is not claimable until rescued"
    );
    let rescued = store.rescue_expired(now_ms()).await.expect("rescue");
    assert_eq!(rescued.iter().map(|r| r.job_id).collect::<Vec<_>>(), vec![claimed[1].lease.job_id]);
    let reclaimed = store.claim(&claim_request("b", 2, Duration::from_secs(30))).await.expect("claim");
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].lease.job_id, claimed[1].lease.job_id);
    assert_eq!(reclaimed[0].last_error.as_deref(), Some("lease held by worker a expired"));
}
}

crate::on_both_backends! {
async fn a_retry_that_is_not_counted_gives_its_attempt_back(scratch) {
    let store = DbJobStore::new(scratch.db.clone());
    let id = store.push(&job(1)).await.expect("push").job_id();
    let mut claimed = store.claim(&claim_request("a", 1, Duration::from_secs(30))).await.expect("claim");
    for _ in 0..3 {
        assert_eq!(claimed[0].attempt, 1, "uncounted retries leave the attempt number alone");
        let error = "database unavailable (not counted)".to_owned();
        let retry = Ack { resolution: Resolution::Retry { run_at_ms: 0, error, counted: false }, ..succeeded(&claimed[0], "a") };
        assert_eq!(store.ack(&[retry]).await.expect("ack"), vec![AckResult::Applied]);
        claimed = store.claim(&claim_request("a", 1, Duration::from_secs(30))).await.expect("claim");
    }
    let counted = Ack {
        resolution: Resolution::Retry { run_at_ms: 0, error: "smtp down".into(), counted: true },
        ..succeeded(&claimed[0], "a")
    };
    store.ack(&[counted]).await.expect("ack");
    let again = store.claim(&claim_request("a", 1, Duration::from_secs(30))).await.expect("claim");
    assert_eq!(again[0].attempt, 2, "a counted retry spends its attempt");
    let recorded: Vec<_> =
        store.attempts(id).await.expect("attempts").iter().map(|a| (a.attempt, a.outcome)).collect();
    assert_eq!(recorded.len(), 4, "every run is still recorded: {recorded:?}");
    assert!(recorded.iter().all(|&outcome| outcome == (1, AttemptOutcome::Retry)), "{recorded:?}");
}
}

crate::on_both_backends! {
async fn retries_are_scheduled_durably_and_dead_jobs_keep_their_error_until_requeued(scratch) {
    let store = DbJobStore::new(scratch.db.clone());
    let id = store.push(&job(1)).await.expect("push").job_id();
    let claimed = store.claim(&claim_request("a", 1, Duration::from_secs(30))).await.expect("claim");
    let run_at_ms = now_ms() + 400;
    let retry =
        Ack { resolution: Resolution::Retry { run_at_ms, error: "smtp down".into(), counted: true }, ..succeeded(&claimed[0], "a") };
    store.ack(&[retry]).await.expect("ack");
    let summary = store.get_job(id).await.expect("get").expect("exists");
    assert_eq!((summary.state, summary.run_at_ms), (JobState::Pending, run_at_ms));
    assert_eq!(summary.last_error.as_deref(), Some("smtp down"));
    assert!(
        store.claim(&claim_request("a", 1, Duration::from_secs(30))).await.expect("claim").is_empty(),
        "not claimable before its run_at"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    let again = store.claim(&claim_request("a", 1, Duration::from_secs(30))).await.expect("claim");
    assert_eq!(again[0].attempt, 2);
    let dead = Ack { resolution: Resolution::Dead { error: "card declined".into() }, ..succeeded(&again[0], "a") };
    store.ack(&[dead]).await.expect("ack");
    let summary = store.get_job(id).await.expect("get").expect("exists");
    assert_eq!(summary.state, JobState::Dead);
    assert_eq!(summary.last_error.as_deref(), Some("card declined"));

    let err = store.discard_dead(JobId(id.0 + 100), "ops", None).await.expect_err("refused");
    assert!(matches!(err, QueueError::NotFound(_)));
    store.requeue_dead(id, "ops@example.com", Some("card fixed")).await.expect("requeue");
    let summary = store.get_job(id).await.expect("get").expect("exists");
    assert_eq!((summary.state, summary.attempts), (JobState::Pending, 0));
    let err = store.requeue_dead(id, "ops", None).await.expect_err("refused");
    assert!(matches!(err, QueueError::NotDead { state: JobState::Pending, .. }));
    let actions: Vec<(String, String)> =
        sqlx::query_as("select action, actor from job_operator_actions where job_id = $1")
            .bind(id.0)
            .fetch_all(store.db().pool())
            .await
            .expect("actions");
    assert_eq!(actions, vec![("requeue".to_owned(), "ops@example.com".to_owned())]);
    let attempts = store.attempts(id).await.expect("attempts");
    let outcomes: Vec<_> = attempts.iter().map(|a| (a.attempt, a.outcome)).collect();
    assert_eq!(outcomes, vec![(1, AttemptOutcome::Retry), (2, AttemptOutcome::Dead)]);
    assert_eq!(attempts[0].error.as_deref(), Some("smtp down"));
}
}

crate::on_both_backends! {
async fn released_jobs_are_claimable_at_once_without_losing_an_attempt(scratch) {
    let store = DbJobStore::new(scratch.db.clone());
    store.push_many(&[job(1), job(2)]).await.expect("push");
    let claimed = store.claim(&claim_request("a", 2, Duration::from_secs(30))).await.expect("claim");
    let releases: Vec<Release> = claimed
        .iter()
        .enumerate()
        .map(|(i, job)| Release {
            lease: job.lease,
            attempt: job.attempt,
            worker_id: "a".into(),
            started_at_ms: (i == 0).then(now_ms),
        })
        .collect();
    assert_eq!(store.release(&releases).await.expect("release"), 2);
    let again = store.claim(&claim_request("b", 2, Duration::from_secs(30))).await.expect("claim");
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|job| job.attempt == 1));
    let started = store.attempts(claimed[0].lease.job_id).await.expect("attempts");
    assert_eq!(started.iter().map(|a| a.outcome).collect::<Vec<_>>(), vec![AttemptOutcome::Released]);
    assert!(store.attempts(claimed[1].lease.job_id).await.expect("attempts").is_empty());
}
}

crate::on_both_backends! {
async fn retention_prunes_old_finished_jobs_in_batches_and_keeps_the_rest(scratch) {
    let store = DbJobStore::new(scratch.db.clone());
    let jobs: Vec<NewJob> = (0..7).map(job).collect();
    store.push_many(&jobs).await.expect("push");
    let claimed = store.claim(&claim_request("a", 5, Duration::from_secs(30))).await.expect("claim");
    let mut acks: Vec<Ack> = claimed[..4].iter().map(|job| succeeded(job, "a")).collect();
    acks.push(Ack { resolution: Resolution::Dead { error: "x".into() }, ..succeeded(&claimed[4], "a") });
    store.ack(&acks).await.expect("ack");
    assert_eq!(
        store.prune_finished(now_ms() - 60_000, 3).await.expect("prune"),
        0,
        "nothing is older than the retention period yet"
    );
    let cutoff = now_ms() + 1;
    assert_eq!(store.prune_finished(cutoff, 3).await.expect("prune"), 3);
    assert_eq!(store.prune_finished(cutoff, 3).await.expect("prune"), 1);
    assert_eq!(store.prune_finished(cutoff, 3).await.expect("prune"), 0);
    let remaining: Vec<JobState> = store
        .list_jobs(&JobFilter { limit: 10, ..JobFilter::default() })
        .await
        .expect("list")
        .into_iter()
        .map(|job| job.state)
        .collect();
    assert_eq!(remaining, vec![JobState::Pending, JobState::Pending, JobState::Dead]);
    let orphans: i64 =
        sqlx::query_scalar("select count(*) from job_attempts where job_id not in (select id from jobs)")
            .fetch_one(store.db().pool())
            .await
            .expect("count");
    assert_eq!(orphans, 0, "attempts go with their job");
}
}

crate::on_both_backends! {
async fn stats_count_jobs_by_type_and_state(scratch) {
    let store = DbJobStore::new(scratch.db.clone());
    store.push_many(&[job(1), job(2), job(3), NewJob::raw("notify", &1).expect("payload")]).await.expect("push");
    store.claim(&claim_request("a", 1, Duration::from_secs(30))).await.expect("claim");
    let stats = store.stats().await.expect("stats");
    let mut depth: Vec<_> = stats.depth.iter().map(|d| (d.job_type.as_str(), d.state, d.count)).collect();
    depth.sort_by_key(|d| (d.0, d.1.as_str()));
    assert_eq!(
        depth,
        vec![("notify", JobState::Pending, 1), ("probe", JobState::Pending, 2), ("probe", JobState::Running, 1),]
    );
    assert!(stats.oldest_pending_age_ms >= 0);
}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_is_retried_never_fatal() {
    // A 1 ms busy timeout makes every contended statement fail with
    // SQLITE_BUSY at once, which the store must absorb.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = DbArgs { db_busy_timeout_ms: 1, ..DbArgs::in_dir(dir.path(), Durability::Normal) }
        .open()
        .await
        .expect("database");
    let store = DbJobStore::new(db.clone());
    store.push(&job(1)).await.expect("push");
    let mut blocker = db.begin_write().await.expect("begin");
    sqlx::query("update jobs set updated_at = updated_at").execute(&mut *blocker).await.expect("take the write lock");
    let claiming = tokio::spawn({
        let store = store.clone();
        async move { store.claim(&claim_request("a", 1, Duration::from_secs(30))).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!claiming.is_finished(), "the claim waits for the lock instead of failing");
    blocker.commit().await.expect("commit");
    let claimed = claiming.await.expect("join").expect("claim survives SQLITE_BUSY");
    assert_eq!(claimed.len(), 1);
    let acked = store.ack(&[succeeded(&claimed[0], "a")]).await.expect("ack");
    assert_eq!(acked, vec![AckResult::Applied]);
}

#[tokio::test]
async fn the_claim_and_prune_queries_use_the_partial_indexes() {
    let scratch = ScratchDb::sqlite().await;
    let store = DbJobStore::new(scratch.db.clone());
    let plan = |sql: &'static str| {
        let pool = store.db().pool().clone();
        async move {
            let rows: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("explain query plan {sql}")))
                    .fetch_all(&pool)
                    .await
                    .expect("plan");
            rows.into_iter().map(|row| row.3).collect::<Vec<_>>().join("; ")
        }
    };
    let claim_plan: Vec<(i64, i64, i64, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("explain query plan {}", super::sqlite::CLAIM)))
            .bind("w")
            .bind(10_i64)
            .bind(5_i64)
            .bind("[\"a\"]")
            .bind(10_i64)
            .fetch_all(store.db().pool())
            .await
            .expect("plan");
    let claim = claim_plan.into_iter().map(|row| row.3).collect::<Vec<_>>().join("; ");
    assert!(claim.contains("jobs_pending_by_order"), "{claim}");
    assert!(!claim.contains("TEMP B-TREE"), "no sort: {claim}");
    let prune =
        plan("select id from jobs where status in ('succeeded', 'discarded') and finished_at < 5 limit 10").await;
    assert!(prune.contains("jobs_finished"), "{prune}");
    let rescue = plan("select 1 from jobs where status = 'running' and lease_expires_at < 5").await;
    assert!(rescue.contains("jobs_running"), "{rescue}");
}
