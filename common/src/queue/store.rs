//! The interface every job store implements (SQLite now; PostgreSQL with
//! `SKIP LOCKED` and `LISTEN/NOTIFY` later), and the values it trades in.
//!
//! Pushing a job is not part of the trait: it takes the caller's open
//! transaction, whose type depends on the database (see
//! [`super::sqlite::enqueue`]).

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use super::job::{ClaimedJob, JobId, JobState, Lease};

/// Why a queue operation failed. A busy database never shows up here: the
/// store retries it.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The database failed.
    #[error("job store database error")]
    Database(#[from] sqlx::Error),
    /// A payload could not be serialised.
    #[error("failed to encode the payload of a {job_type} job")]
    Encode {
        /// The job type.
        job_type: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// No job has this id.
    #[error("job {0} not found")]
    NotFound(JobId),
    /// The operation needs a dead job.
    #[error("job {job_id} is {state}, not dead")]
    NotDead {
        /// The job.
        job_id: JobId,
        /// Its current state.
        state: JobState,
    },
}

/// Which job types a worker takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRequest {
    /// The worker taking the jobs; recorded as the lease owner.
    pub worker_id: String,
    /// The job types it can run.
    pub job_types: Vec<String>,
    /// At most this many jobs.
    pub limit: u32,
    /// How long the lease lasts unless extended.
    pub lease: Duration,
}

/// How the error of an attempt row ends when the attempt was not counted
/// (see [`Resolution::Retry`]).
pub const NOT_COUNTED: &str = "(not counted)";

/// How an attempt ended, as the worker decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The job is finished.
    Succeeded,
    /// A transient failure: run again at `run_at_ms`.
    Retry {
        /// When the next attempt is due (Unix ms).
        run_at_ms: i64,
        /// The failure.
        error: String,
        /// Whether the attempt counts toward the job's limit. One cut short
        /// because the database could not be reached does not: an outage
        /// must not use up the attempts of every job running through it.
        counted: bool,
    },
    /// A permanent failure, attempts exhausted or an undecodable payload.
    Dead {
        /// The failure.
        error: String,
    },
}

/// One attempt's result, presented with the lease it ran under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The lease; the result is dropped if it is no longer current.
    pub lease: Lease,
    /// The attempt number.
    pub attempt: u32,
    /// The worker that ran it.
    pub worker_id: String,
    /// When the handler started (Unix ms).
    pub started_at_ms: i64,
    /// When it finished (Unix ms).
    pub finished_at_ms: i64,
    /// What happens to the job next.
    pub resolution: Resolution,
}

/// Whether an ack was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckResult {
    /// The lease was current and the result is committed.
    Applied,
    /// Another worker holds the job now (our lease expired); nothing was written.
    LeaseLost,
}

/// A job handed back at shutdown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// The lease being returned.
    pub lease: Lease,
    /// The attempt number.
    pub attempt: u32,
    /// The worker returning it.
    pub worker_id: String,
    /// When its handler started, if it did; an attempt row records the interruption.
    pub started_at_ms: Option<i64>,
}

/// A running job whose lease expired, made claimable again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RescuedJob {
    /// The job.
    pub job_id: JobId,
    /// Its type.
    pub job_type: String,
    /// The worker that lost it.
    pub lost_by: String,
}

/// Filters for listing jobs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this type.
    pub job_type: Option<String>,
    /// Only jobs with a smaller id (keyset pagination, newest first).
    pub before_id: Option<JobId>,
    /// At most this many (capped at 500).
    pub limit: u32,
}

/// A job as operators see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JobSummary {
    /// The job.
    pub id: JobId,
    /// Its type.
    pub job_type: String,
    /// Its JSON payload.
    pub payload: String,
    /// Its state.
    pub state: JobState,
    /// Its dedup key.
    pub dedup_key: Option<String>,
    /// Attempts started.
    pub attempts: u32,
    /// When it is or was due (Unix ms).
    pub run_at_ms: i64,
    /// The lease holder while running.
    pub lease_owner: Option<String>,
    /// The lease expiry while running (Unix ms).
    pub lease_expires_at_ms: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was pushed (Unix ms).
    pub created_at_ms: i64,
    /// When it last changed (Unix ms).
    pub updated_at_ms: i64,
    /// When it finished (Unix ms).
    pub finished_at_ms: Option<i64>,
}

/// How an attempt ended, as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The handler succeeded.
    Succeeded,
    /// A transient failure; a later attempt was scheduled.
    Retry,
    /// The failure made the job dead.
    Dead,
    /// A shutting-down worker gave the job back mid-run.
    Released,
    /// The worker's lease expired (killed, paused or partitioned).
    Abandoned,
}

impl AttemptOutcome {
    /// The value stored in `job_attempts.outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Succeeded => "succeeded",
            AttemptOutcome::Retry => "retry",
            AttemptOutcome::Dead => "dead",
            AttemptOutcome::Released => "released",
            AttemptOutcome::Abandoned => "abandoned",
        }
    }

    /// Parses a `job_attempts.outcome` value.
    pub fn parse(value: &str) -> Option<AttemptOutcome> {
        [
            AttemptOutcome::Succeeded,
            AttemptOutcome::Retry,
            AttemptOutcome::Dead,
            AttemptOutcome::Released,
            AttemptOutcome::Abandoned,
        ]
        .into_iter()
        .find(|outcome| outcome.as_str() == value)
    }
}

/// One recorded attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttemptRecord {
    /// The job.
    pub job_id: JobId,
    /// The attempt number.
    pub attempt: u32,
    /// The worker that ran it.
    pub worker_id: String,
    /// Start (Unix ms).
    pub started_at_ms: i64,
    /// End (Unix ms).
    pub finished_at_ms: i64,
    /// `finished_at_ms - started_at_ms`.
    pub duration_ms: i64,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The failure, if any.
    pub error: Option<String>,
}

/// Number of jobs of one type in one state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// The job type.
    pub job_type: String,
    /// The state.
    pub state: JobState,
    /// How many.
    pub count: u64,
}

/// Queue depth for metrics and the admin dashboard.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Pending, running and dead jobs by type (finished jobs are counted by metrics, not here).
    pub depth: Vec<QueueDepth>,
    /// Age of the oldest due pending job (ms), 0 when none is waiting.
    pub oldest_pending_age_ms: i64,
}

/// A durable job store with leases.
///
/// Every method retries a busy database itself; an error is a real failure.
pub trait JobStore: Clone + Send + Sync + 'static {
    /// Claims up to `request.limit` due jobs in one write transaction, each
    /// with a fresh lease and fencing token: the oldest order's jobs first
    /// (jobs of no order before any), then in push order.
    fn claim(&self, request: &ClaimRequest) -> impl Future<Output = Result<Vec<ClaimedJob>, QueueError>> + Send;

    /// A cheap read: is any job of these types due now?
    fn has_due_jobs(&self, job_types: &[String]) -> impl Future<Output = Result<bool, QueueError>> + Send;

    /// Records a group of attempt results in one transaction. Each is applied
    /// only if its lease is still current.
    fn ack(&self, acks: &[Ack]) -> impl Future<Output = Result<Vec<AckResult>, QueueError>> + Send;

    /// Extends the leases still current to `expires_at_ms`; returns the ones that were lost.
    fn extend_leases(
        &self,
        leases: &[Lease],
        expires_at_ms: i64,
    ) -> impl Future<Output = Result<Vec<Lease>, QueueError>> + Send;

    /// Hands jobs back, claimable at once, without counting the attempt.
    fn release(&self, releases: &[Release]) -> impl Future<Output = Result<u64, QueueError>> + Send;

    /// Makes running jobs whose lease expired before `now_ms` claimable again.
    fn rescue_expired(&self, now_ms: i64) -> impl Future<Output = Result<Vec<RescuedJob>, QueueError>> + Send;

    /// Deletes up to `batch` succeeded or discarded jobs (and their attempts)
    /// that finished before `finished_before_ms`; returns how many.
    fn prune_finished(
        &self,
        finished_before_ms: i64,
        batch: u32,
    ) -> impl Future<Output = Result<u64, QueueError>> + Send;

    /// Puts a dead job back to pending with a fresh set of attempts.
    fn requeue_dead(
        &self,
        job_id: JobId,
        actor: &str,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Marks a dead job discarded; retention prunes it later.
    fn discard_dead(
        &self,
        job_id: JobId,
        actor: &str,
        reason: Option<&str>,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Lists jobs, newest first.
    fn list_jobs(&self, filter: &JobFilter) -> impl Future<Output = Result<Vec<JobSummary>, QueueError>> + Send;

    /// One job.
    fn get_job(&self, job_id: JobId) -> impl Future<Output = Result<Option<JobSummary>, QueueError>> + Send;

    /// A job's attempts, oldest first.
    fn attempts(&self, job_id: JobId) -> impl Future<Output = Result<Vec<AttemptRecord>, QueueError>> + Send;

    /// Depth by type and state, and the oldest pending job's age.
    fn stats(&self) -> impl Future<Output = Result<QueueStats, QueueError>> + Send;
}
