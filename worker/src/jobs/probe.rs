//! `probe`: a diagnostic job for the queue's own tests. Each execution that
//! finishes writes a row to `queue_probe_runs` (probe key, job, attempt,
//! worker, start and end in microseconds), so a test can check that every
//! job ran and that no job ran twice at the same time. Its payload can make
//! it sleep, hang (until the worker is killed or shut down) or fail.

use std::time::Duration;

use kassa_common::queue::{JobError, JobPayload, Outcome, RetryPolicy};
use serde::{Deserialize, Serialize};

use crate::registry::{Job, JobContext};

/// What a probe execution does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// The test's name for this job.
    pub key: i64,
    /// Sleep this long on every attempt.
    #[serde(default)]
    pub sleep_ms: u64,
    /// Attempts up to this number hang for an hour (until killed or shut down).
    #[serde(default)]
    pub hang_attempts: u32,
    /// Attempts up to this number fail transiently.
    #[serde(default)]
    pub fail_attempts: u32,
    /// Runs up to this number fail as if the database could not be reached
    /// (such a failure does not count as an attempt).
    #[serde(default)]
    pub unavailable_runs: u32,
    /// Every attempt fails permanently.
    #[serde(default)]
    pub fail_permanently: bool,
}

impl Probe {
    /// Runs the probe and records the execution.
    pub async fn run(&self, ctx: &JobContext) -> Result<Outcome, JobError> {
        let started_us = now_us();
        if ctx.attempt <= self.hang_attempts {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        if self.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        }
        let (result, outcome) = if self.fail_permanently {
            (Err(JobError::permanent("probe told to fail permanently")), "permanent")
        } else if self.unavailable_runs > 0 && self.runs_so_far(ctx).await? < self.unavailable_runs {
            (Err(JobError::from(sqlx::Error::PoolTimedOut)), "unavailable")
        } else if ctx.attempt <= self.fail_attempts {
            let error = format!("probe told to fail attempt {}", ctx.attempt);
            (Err(JobError::transient(error)), "transient")
        } else {
            (Ok(Outcome::Done), "done")
        };
        let finished_us = now_us();
        let (key, job_id, attempt, worker_id) = (self.key, ctx.job_id.0, i64::from(ctx.attempt), ctx.worker_id.clone());
        ctx.db
            .write(move |tx| {
                let worker_id = worker_id.clone();
                Box::pin(async move {
                    sqlx::query(
                        "insert into queue_probe_runs
                             (probe_key, job_id, attempt, worker_id, started_us, finished_us, outcome)
                         values ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(key)
                    .bind(job_id)
                    .bind(attempt)
                    .bind(&*worker_id)
                    .bind(started_us)
                    .bind(finished_us)
                    .bind(outcome)
                    .execute(tx)
                    .await
                })
            })
            .await
            .map_err(JobError::transient)?;
        result
    }

    /// Executions of this probe's job recorded before this one.
    async fn runs_so_far(&self, ctx: &JobContext) -> Result<u32, JobError> {
        let runs: i64 = sqlx::query_scalar("select count(*) from queue_probe_runs where job_id = $1")
            .bind(ctx.job_id.0)
            .fetch_one(ctx.db.pool())
            .await?;
        Ok(u32::try_from(runs).unwrap_or(u32::MAX))
    }
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| i64::try_from(since.as_micros()).unwrap_or(i64::MAX))
}

impl JobPayload for Probe {
    const JOB_TYPE: &'static str = "probe";
}

impl Job for Probe {
    /// Quick retries, so tests of retry behaviour finish fast.
    fn retry_policy() -> RetryPolicy {
        RetryPolicy { max_attempts: 5, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(2) }
    }

    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        self.run(&ctx).await
    }
}
