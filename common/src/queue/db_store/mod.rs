//! The job store on Kassa's own database: the `jobs`, `job_attempts` and
//! `job_operator_actions` tables, on SQLite or PostgreSQL. Writes are units
//! of work through [`Db::write`] — on SQLite they share the process's group
//! commit with the business writes, on PostgreSQL each is a transaction —
//! and reads use pooled connections. What the two backends do differently
//! (how a claim locks, how idle workers learn of new jobs) lives in
//! [`super::sqlite`] and [`super::postgres`].
//!
//! # Layout
//! - this file: the store handle and its [`JobStore`] implementation.
//! - `lease`: claims, acks, heartbeats, releases and rescues.
//! - `admin`: operators' view and actions, statistics, retention.

mod admin;
mod lease;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::job::{ClaimedJob, Enqueued, JobId, Lease, NewJob};
use super::store::{
    Ack, AckResult, AttemptRecord, ClaimRequest, JobFilter, JobStore, JobSummary, QueueError, QueueStats, Release,
    RescuedJob,
};
use super::{enqueue_many, wake};
use crate::db::{Db, is_busy};

/// Runs a read until it returns something other than "database busy"
/// (SQLite readers see it only in rare moments such as WAL recovery),
/// sleeping 1 ms, 2 ms, … up to 100 ms between tries and counting each
/// retry in `kassa_sqlite_busy_retries_total`. A busy database is never fatal.
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

/// The job store on a [`Db`].
#[derive(Clone, Debug)]
pub struct DbJobStore {
    db: Db,
}

impl DbJobStore {
    /// A store on `db`, which must have the migrations applied.
    pub fn new(db: Db) -> DbJobStore {
        DbJobStore { db }
    }

    /// The database the store uses.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Pushes one job in its own unit of work. Business code should use
    /// [`super::enqueue`] inside its own unit instead.
    pub async fn push(&self, job: &NewJob) -> Result<Enqueued, QueueError> {
        let mut pushed = self.push_many(std::slice::from_ref(job)).await?;
        pushed.pop().ok_or_else(|| QueueError::Database(sqlx::Error::Protocol("push returned no job".into())))
    }

    /// Pushes jobs in one unit of work.
    pub async fn push_many(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>, QueueError> {
        let jobs: Arc<[NewJob]> = jobs.into();
        self.db
            .write(move |tx| {
                let jobs = jobs.clone();
                Box::pin(async move { enqueue_many(tx, &jobs).await })
            })
            .await
    }
}

impl JobStore for DbJobStore {
    async fn claim(&self, request: &ClaimRequest) -> Result<Vec<ClaimedJob>, QueueError> {
        let request = Arc::new(request.clone());
        self.db
            .write(move |tx| {
                let request = request.clone();
                Box::pin(async move { lease::claim(tx, &request).await.map_err(QueueError::from) })
            })
            .await
    }

    async fn has_due_jobs(&self, job_types: &[String]) -> Result<bool, QueueError> {
        retry_busy(|| lease::has_due_jobs(self.db.pool(), self.db.backend(), job_types)).await
    }

    async fn ack(&self, acks: &[Ack]) -> Result<Vec<AckResult>, QueueError> {
        let acks: Arc<[Ack]> = acks.into();
        self.db
            .write(move |tx| {
                let acks = acks.clone();
                Box::pin(async move { lease::ack(tx, &acks).await.map_err(QueueError::from) })
            })
            .await
    }

    async fn extend_leases(&self, leases: &[Lease], expires_at_ms: i64) -> Result<Vec<Lease>, QueueError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let leases: Arc<[Lease]> = leases.into();
        self.db
            .write(move |tx| {
                let leases = leases.clone();
                Box::pin(async move { lease::extend(tx, &leases, expires_at_ms).await.map_err(QueueError::from) })
            })
            .await
    }

    async fn release(&self, releases: &[Release]) -> Result<u64, QueueError> {
        if releases.is_empty() {
            return Ok(0);
        }
        let releases: Arc<[Release]> = releases.into();
        let released = self
            .db
            .write(move |tx| {
                let releases = releases.clone();
                Box::pin(async move { lease::release(tx, &releases).await.map_err(QueueError::from) })
            })
            .await?;
        if released > 0 {
            wake::notify_pushed();
        }
        Ok(released)
    }

    async fn rescue_expired(&self, now_ms: i64) -> Result<Vec<RescuedJob>, QueueError> {
        // A read first, so the common case (nothing expired) writes nothing.
        if !retry_busy(|| lease::any_expired(self.db.pool(), now_ms)).await? {
            return Ok(Vec::new());
        }
        let rescued = self
            .db
            .write(move |tx| Box::pin(async move { lease::rescue_expired(tx, now_ms).await.map_err(QueueError::from) }))
            .await?;
        if !rescued.is_empty() {
            wake::notify_pushed();
        }
        Ok(rescued)
    }

    async fn prune_finished(&self, finished_before_ms: i64, batch: u32) -> Result<u64, QueueError> {
        self.db
            .write(move |tx| {
                Box::pin(
                    async move { admin::prune_finished(tx, finished_before_ms, batch).await.map_err(QueueError::from) },
                )
            })
            .await
    }

    async fn requeue_dead(&self, job_id: JobId, actor: &str, reason: Option<&str>) -> Result<(), QueueError> {
        admin::operator_action(&self.db, job_id, admin::OperatorAction::Requeue, actor, reason).await?;
        wake::notify_pushed();
        Ok(())
    }

    async fn discard_dead(&self, job_id: JobId, actor: &str, reason: Option<&str>) -> Result<(), QueueError> {
        admin::operator_action(&self.db, job_id, admin::OperatorAction::Discard, actor, reason).await
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobSummary>, QueueError> {
        retry_busy(|| admin::list_jobs(self.db.pool(), filter)).await
    }

    async fn get_job(&self, job_id: JobId) -> Result<Option<JobSummary>, QueueError> {
        retry_busy(|| admin::get_job(self.db.pool(), job_id)).await
    }

    async fn attempts(&self, job_id: JobId) -> Result<Vec<AttemptRecord>, QueueError> {
        retry_busy(|| admin::attempts(self.db.pool(), job_id)).await
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        retry_busy(|| admin::stats(self.db.pool())).await
    }
}

impl crate::db::WriteError for QueueError {
    fn as_database_error(&self) -> Option<&sqlx::Error> {
        match self {
            QueueError::Database(error) => Some(error),
            _ => None,
        }
    }
}
