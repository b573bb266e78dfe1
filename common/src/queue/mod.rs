//! The durable job queue: Kassa's own job store under the apalis workers.
//!
//! A job is a row in `jobs` (see `migrations/0002_job_queue.sql`). Business
//! code pushes jobs inside its own transaction with [`enqueue`]; workers claim
//! them in batches under leases with fencing tokens, record every attempt,
//! retry transient failures durably with backoff, and move the rest to
//! `dead` for operators. The store sits behind [`JobStore`] so that a
//! PostgreSQL implementation can replace the SQLite one.
//!
//! # Layout
//! - [`job`]: job ids, states, new and claimed jobs, leases.
//! - [`outcome`]: what a handler returns ([`Outcome`], [`JobError`]).
//! - [`retry`]: backoff with jitter and per-type attempt limits.
//! - [`store`]: the [`JobStore`] trait and the values it trades in.
//! - [`sqlite`]: the SQLite store and [`enqueue`].
//! - [`wake`]: in-process wake-ups and adaptive polling.
//! - [`backend`]: apalis-core's `Backend` over a store, with group-committed acks,
//!   heartbeats, lease rescue and retention.
//! - [`metrics`]: metric names and help texts.

pub mod backend;
pub mod job;
pub mod metrics;
pub mod outcome;
pub mod retry;
pub mod sqlite;
pub mod store;
pub mod wake;

#[cfg(test)]
mod tests;

pub use backend::{QueueBackend, QueueConfig, QueueRuntime, start};
pub use job::{ClaimedJob, Enqueued, JobId, JobPayload, JobState, Lease, NewJob};
pub use outcome::{BoxError, JobError, Outcome};
pub use retry::{RetryPolicies, RetryPolicy};
pub use sqlite::{SqliteJobStore, enqueue};
pub use store::{
    Ack, AckResult, AttemptOutcome, AttemptRecord, ClaimRequest, JobFilter, JobStore, JobSummary, QueueDepth,
    QueueError, QueueStats, Release, RescuedJob, Resolution,
};
