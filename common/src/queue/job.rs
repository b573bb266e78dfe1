//! What a job is to the store: its id and state, a job about to be pushed,
//! and a job a worker has claimed under a lease.

use std::fmt;

use serde::Serialize;

use super::store::QueueError;

/// A job's row id in the `jobs` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for `run_at` and a free worker.
    Pending,
    /// Held by a worker under a lease.
    Running,
    /// Finished successfully; pruned after the retention period.
    Succeeded,
    /// Failed permanently or ran out of attempts; kept until an operator acts.
    Dead,
    /// A dead job an operator chose not to retry; pruned like succeeded jobs.
    Discarded,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 5] =
        [JobState::Pending, JobState::Running, JobState::Succeeded, JobState::Dead, JobState::Discarded];

    /// The value stored in `jobs.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
            JobState::Discarded => "discarded",
        }
    }

    /// Parses a `jobs.status` value.
    pub fn parse(value: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|state| state.as_str() == value)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A payload type that knows which job type it belongs to, so that pushing
/// it cannot pair a payload with the wrong handler.
pub trait JobPayload: Serialize {
    /// The `jobs.job_type` value, e.g. `"reserve_stock"`.
    const JOB_TYPE: &'static str;
}

/// A job about to be pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob {
    /// The handler that will run it.
    pub job_type: String,
    /// The JSON payload.
    pub payload: String,
    /// Makes a second push of the same (job type, key) a no-op.
    pub dedup_key: Option<String>,
    /// The order the job acts for, so the order's timeline finds it.
    pub order_id: Option<i64>,
    /// Not claimable before this instant (Unix ms); `None` means now.
    pub run_at_ms: Option<i64>,
}

impl NewJob {
    /// A job for `payload`'s type, due now.
    pub fn new<P: JobPayload>(payload: &P) -> Result<NewJob, QueueError> {
        NewJob::raw(P::JOB_TYPE, payload)
    }

    /// A job of an explicit type, due now; for diagnostics and tests.
    pub fn raw<P: Serialize + ?Sized>(job_type: &str, payload: &P) -> Result<NewJob, QueueError> {
        let payload = serde_json::to_string(payload)
            .map_err(|source| QueueError::Encode { job_type: job_type.to_owned(), source })?;
        Ok(NewJob { job_type: job_type.to_owned(), payload, dedup_key: None, order_id: None, run_at_ms: None })
    }

    /// Sets the dedup key: a second push with the same job type and key is a no-op.
    pub fn dedup_key(mut self, key: impl Into<String>) -> NewJob {
        self.dedup_key = Some(key.into());
        self
    }

    /// Links the job to an order's timeline.
    pub fn for_order(mut self, order_id: i64) -> NewJob {
        self.order_id = Some(order_id);
        self
    }

    /// Delays the job until `run_at_ms` (Unix ms).
    pub fn run_at_ms(mut self, run_at_ms: i64) -> NewJob {
        self.run_at_ms = Some(run_at_ms);
        self
    }
}

/// What a push did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job row.
    Created(JobId),
    /// A job with the same type and dedup key already existed; nothing was written.
    Duplicate(JobId),
}

impl Enqueued {
    /// The id of the job, new or existing.
    pub fn job_id(self) -> JobId {
        match self {
            Enqueued::Created(id) | Enqueued::Duplicate(id) => id,
        }
    }
}

/// The right to work on one job: only the holder of the current token may
/// record the job's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The job.
    pub job_id: JobId,
    /// The fencing token handed out by the claim; every claim of the job gets a larger one.
    pub token: i64,
}

/// A job a worker has claimed, with its lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedJob {
    /// The lease the worker holds.
    pub lease: Lease,
    /// The handler to run.
    pub job_type: String,
    /// The JSON payload, decoded by the handler.
    pub payload: String,
    /// This attempt's number, starting at 1.
    pub attempt: u32,
    /// When the job was pushed (Unix ms).
    pub created_at_ms: i64,
    /// When the job became due (Unix ms): the enqueue→start latency is measured from here.
    pub run_at_ms: i64,
    /// When this claim was made (Unix ms).
    pub claimed_at_ms: i64,
    /// The error of the previous attempt, if any.
    pub last_error: Option<String>,
}
