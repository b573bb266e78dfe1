//! The durable job queue's store: Kassa's own tables under the apalis
//! workers (the runtime that claims and runs jobs is the worker crate's
//! `queue` module).
//!
//! A job is a row in `jobs` (see `migrations/*/0002_job_queue.sql`).
//! Business code pushes jobs inside its own unit of work with [`enqueue`];
//! workers claim them in batches under leases with fencing tokens, record
//! every attempt, retry transient failures durably with backoff, and move
//! the rest to `dead` for operators. The store sits behind [`JobStore`].
//!
//! # Layout
//! - [`job`]: job ids, states, new and claimed jobs, leases.
//! - [`outcome`]: what a handler returns ([`Outcome`], [`JobError`]).
//! - [`retry`]: backoff with jitter and per-type attempt limits.
//! - [`store`]: the [`JobStore`] trait and the values it trades in.
//! - [`enqueue`](mod@enqueue): pushing jobs in the caller's transaction, on either backend.
//! - [`db_store`]: [`DbJobStore`], the store on Kassa's database.
//! - [`sqlite`], [`postgres`]: what each backend does differently (claim
//!   locking, waking idle workers across processes).
//! - [`wake`]: in-process wake-ups and adaptive polling.
//! - [`metrics`]: metric names and help texts.

pub mod db_store;
pub mod enqueue;
pub mod job;
pub mod metrics;
pub mod outcome;
pub mod postgres;
pub mod retry;
pub mod sqlite;
pub mod store;
pub mod wake;

#[cfg(test)]
mod tests;

pub use db_store::{DbJobStore, retry_busy};
pub use enqueue::{enqueue, enqueue_many};
pub use job::{ClaimedJob, Enqueued, JobId, JobPayload, JobState, Lease, NewJob};
pub use outcome::{BoxError, JobError, Outcome};
pub use retry::{RetryPolicies, RetryPolicy};
pub use store::{
    Ack, AckResult, AttemptOutcome, AttemptRecord, ClaimRequest, JobFilter, JobStore, JobSummary, QueueDepth,
    QueueError, QueueStats, Release, RescuedJob, Resolution,
};
