//! The SQLite job store: the `jobs`, `job_attempts` and
//! `job_operator_actions` tables of `migrations/0002_job_queue.sql`.
//!
//! Every write runs in a `BEGIN IMMEDIATE` transaction, so two processes on
//! one file serialise on SQLite's write lock instead of failing half way, and
//! a busy database is retried with backoff (see [`retry_busy`]).
//!
//! # Layout
//! - this file: the store handle, pushing jobs, busy retries.
//! - `lease`: claims, acks, heartbeats, releases and rescues.
//! - `admin`: operators' view and actions, statistics, retention.

mod admin;
mod lease;

use std::future::Future;
use std::time::Duration;

use sqlx::{SqliteConnection, SqlitePool};

use super::job::{Enqueued, JobId, NewJob};
use super::store::{
    Ack, AckResult, AttemptRecord, ClaimRequest, JobFilter, JobStore, JobSummary, QueueError, QueueStats, Release,
    RescuedJob,
};
use super::wake;
use crate::db::{begin_write, is_busy, now_ms};
use crate::queue::job::{ClaimedJob, Lease};

/// Pushes `job` inside the caller's transaction (or connection): the job
/// exists if and only if the caller commits. With a dedup key, a second push
/// of the same job type and key writes nothing and returns the existing job.
///
/// Workers in this process are woken at once. The caller's transaction holds
/// SQLite's write lock from this insert on, so a woken worker's claim waits
/// for the commit and sees the job; if the caller rolls back, the worker
/// finds nothing and goes back to sleep.
pub async fn enqueue(conn: &mut SqliteConnection, job: &NewJob) -> Result<Enqueued, QueueError> {
    Ok(insert_job(conn, job).await?)
}

async fn insert_job(conn: &mut SqliteConnection, job: &NewJob) -> Result<Enqueued, sqlx::Error> {
    let now = now_ms();
    let inserted: Option<i64> = sqlx::query_scalar(
        "insert into jobs (job_type, payload, dedup_key, run_at, created_at, updated_at)
         values (?1, ?2, ?3, ?4, ?5, ?5)
         on conflict (job_type, dedup_key) where dedup_key is not null do nothing
         returning id",
    )
    .bind(&job.job_type)
    .bind(&job.payload)
    .bind(&job.dedup_key)
    .bind(job.run_at_ms.unwrap_or(now))
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    match inserted {
        Some(id) => {
            ::metrics::counter!(crate::queue::metrics::JOBS_ENQUEUED, "job_type" => job.job_type.clone()).increment(1);
            wake::notify_pushed();
            Ok(Enqueued::Created(JobId(id)))
        }
        None => {
            let existing: i64 = sqlx::query_scalar("select id from jobs where job_type = ?1 and dedup_key = ?2")
                .bind(&job.job_type)
                .bind(&job.dedup_key)
                .fetch_one(&mut *conn)
                .await?;
            Ok(Enqueued::Duplicate(JobId(existing)))
        }
    }
}

/// Runs `operation` until it returns something other than "database busy",
/// sleeping 1 ms, 2 ms, … up to 100 ms between tries and counting each retry
/// in `kassa_sqlite_busy_retries_total`. A busy database is never fatal.
pub async fn retry_busy<T, F, Fut>(mut operation: F) -> Result<T, QueueError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut delay = Duration::from_millis(1);
    loop {
        match operation().await {
            Err(error) if is_busy(&error) => {
                ::metrics::counter!(crate::queue::metrics::SQLITE_BUSY_RETRIES).increment(1);
                tracing::debug!(%error, "database busy, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            other => return other.map_err(QueueError::from),
        }
    }
}

/// The job store on a SQLite pool.
#[derive(Clone, Debug)]
pub struct SqliteJobStore {
    pool: SqlitePool,
}

impl SqliteJobStore {
    /// A store on `pool`, which must have the migrations applied.
    pub fn new(pool: SqlitePool) -> SqliteJobStore {
        SqliteJobStore { pool }
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Pushes one job in its own transaction (busy retried). Business code
    /// should use [`enqueue`] inside its own transaction instead.
    pub async fn push(&self, job: &NewJob) -> Result<Enqueued, QueueError> {
        let mut pushed = self.push_many(std::slice::from_ref(job)).await?;
        pushed.pop().ok_or_else(|| QueueError::Database(sqlx::Error::Protocol("push returned no job".into())))
    }

    /// Pushes jobs in one transaction (busy retried).
    pub async fn push_many(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, QueueError> {
        retry_busy(|| async {
            let mut tx = begin_write(&self.pool).await?;
            let mut pushed = Vec::with_capacity(jobs.len());
            for job in jobs {
                pushed.push(insert_job(&mut tx, job).await?);
            }
            tx.commit().await?;
            Ok(pushed)
        })
        .await
    }
}

impl JobStore for SqliteJobStore {
    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<ClaimedJob>, QueueError> {
        let job_types = json_list(&request.job_types);
        retry_busy(|| lease::claim(&self.pool, request, &job_types)).await
    }

    async fn has_due_jobs(&self, job_types: &[String]) -> Result<bool, QueueError> {
        let job_types = json_list(job_types);
        retry_busy(|| lease::has_due_jobs(&self.pool, &job_types)).await
    }

    async fn ack(&self, acks: &[Ack]) -> Result<Vec<AckResult>, QueueError> {
        retry_busy(|| lease::ack(&self.pool, acks)).await
    }

    async fn extend_leases(&self, leases: &[Lease], expires_at_ms: i64) -> Result<Vec<Lease>, QueueError> {
        retry_busy(|| lease::extend(&self.pool, leases, expires_at_ms)).await
    }

    async fn release(&self, releases: &[Release]) -> Result<u64, QueueError> {
        let released = retry_busy(|| lease::release(&self.pool, releases)).await?;
        if released > 0 {
            wake::notify_pushed();
        }
        Ok(released)
    }

    async fn rescue_expired(&self, now_ms: i64) -> Result<Vec<RescuedJob>, QueueError> {
        let rescued = retry_busy(|| lease::rescue_expired(&self.pool, now_ms)).await?;
        if !rescued.is_empty() {
            wake::notify_pushed();
        }
        Ok(rescued)
    }

    async fn prune_finished(&self, finished_before_ms: i64, batch: u32) -> Result<u64, QueueError> {
        retry_busy(|| admin::prune_finished(&self.pool, finished_before_ms, batch)).await
    }

    async fn requeue_dead(&self, job_id: JobId, actor: &str, reason: Option<&str>) -> Result<(), QueueError> {
        admin::operator_action(&self.pool, job_id, admin::OperatorAction::Requeue, actor, reason).await?;
        wake::notify_pushed();
        Ok(())
    }

    async fn discard_dead(&self, job_id: JobId, actor: &str, reason: Option<&str>) -> Result<(), QueueError> {
        admin::operator_action(&self.pool, job_id, admin::OperatorAction::Discard, actor, reason).await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobSummary>, QueueError> {
        retry_busy(|| admin::list_jobs(&self.pool, filter)).await
    }

    async fn get_job(&self, job_id: JobId) -> Result<Option<JobSummary>, QueueError> {
        retry_busy(|| admin::get_job(&self.pool, job_id)).await
    }

    async fn attempts(&self, job_id: JobId) -> Result<Vec<AttemptRecord>, QueueError> {
        retry_busy(|| admin::attempts(&self.pool, job_id)).await
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        retry_busy(|| admin::stats(&self.pool)).await
    }
}

/// A JSON array of strings, for `… in (select value from json_each(?))`,
/// which keeps the SQL static whatever the list's length.
fn json_list(values: &[String]) -> String {
    serde_json::Value::from(values.to_vec()).to_string()
}
