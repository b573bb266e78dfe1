//! The backend's tower middleware: it marks a job started, runs the rest of
//! the stack, turns the result into a [`Resolution`] (retry with backoff,
//! dead, or done) and commits it through the acker under the job's lease,
//! before the job's concurrency slot is freed.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use apalis_core::error::{AbortError, BoxDynError};
use apalis_core::layers::{Layer, Service};
use apalis_core::task::Task;
use futures::future::BoxFuture;

use super::{Shared, acker};
use kassa_common::db::now_ms;
use kassa_common::queue::job::ClaimedJob;
use kassa_common::queue::metrics;
use kassa_common::queue::outcome::{JobError, error_chain};
use kassa_common::queue::store::{Ack, AckResult, JobStore, NOT_COUNTED, Resolution};

/// Produces [`AckService`]s; handed to apalis as the backend's middleware.
pub struct AckLayer<S> {
    shared: Arc<Shared<S>>,
}

impl<S> AckLayer<S> {
    pub(super) fn new(shared: Arc<Shared<S>>) -> AckLayer<S> {
        AckLayer { shared }
    }
}

impl<S> Clone for AckLayer<S> {
    fn clone(&self) -> Self {
        AckLayer { shared: self.shared.clone() }
    }
}

impl<S> std::fmt::Debug for AckLayer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckLayer").finish_non_exhaustive()
    }
}

impl<Inner, S> Layer<Inner> for AckLayer<S> {
    type Service = AckService<Inner, S>;

    fn layer(&self, inner: Inner) -> AckService<Inner, S> {
        AckService { inner, shared: self.shared.clone() }
    }
}

/// Records each job's result under its lease; see the module docs.
pub struct AckService<Inner, S> {
    inner: Inner,
    shared: Arc<Shared<S>>,
}

impl<Inner: Clone, S> Clone for AckService<Inner, S> {
    fn clone(&self) -> Self {
        AckService { inner: self.inner.clone(), shared: self.shared.clone() }
    }
}

impl<Inner, S> std::fmt::Debug for AckService<Inner, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckService").finish_non_exhaustive()
    }
}

impl<Inner, S, Res> Service<Task<ClaimedJob>> for AckService<Inner, S>
where
    Inner: Service<Task<ClaimedJob>, Response = Res>,
    Inner::Future: Send + 'static,
    Inner::Error: Into<BoxDynError>,
    Res: Send + 'static,
    S: JobStore,
{
    type Response = Res;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<Res, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxDynError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<ClaimedJob>) -> Self::Future {
        let job = JobMeta::of(&task.args);
        let shared = self.shared.clone();
        let policy = *shared.config.retry.get(&job.job_type);
        let started_at_ms = now_ms();
        if let Some(held) = shared.held().get_mut(&job.lease.job_id) {
            held.started_at_ms = Some(started_at_ms);
        }
        if job.attempt > policy.max_attempts {
            // Earlier attempts died with their worker (lease expired) until
            // none were left: do not run it again.
            let error = format!(
                "gave up after {} attempts; last: {}",
                job.attempt - 1,
                job.last_error.as_deref().unwrap_or("unknown")
            );
            return Box::pin(async move {
                finish(&shared, &job, started_at_ms, Resolution::Dead { error: error.clone() }).await;
                Err(Box::new(JobError::permanent(error)) as BoxDynError)
            });
        }
        let labels = [("job_type", job.job_type.clone())];
        ::metrics::counter!(metrics::JOBS_STARTED, &labels).increment(1);
        let due_at_ms = job.run_at_ms.max(job.created_at_ms);
        ::metrics::histogram!(metrics::JOB_START_DELAY, &labels)
            .record(started_at_ms.saturating_sub(due_at_ms).max(0) as f64 / 1000.0);
        let running = self.inner.call(task);
        Box::pin(async move {
            let clock = Instant::now();
            let result = running.await.map_err(Into::into);
            ::metrics::histogram!(metrics::JOB_DURATION, &labels).record(clock.elapsed().as_secs_f64());
            let resolution = match &result {
                Ok(_) => Resolution::Succeeded,
                Err(error) => resolve_failure(error, &job, &policy),
            };
            let counter = match resolution {
                Resolution::Succeeded => metrics::JOBS_SUCCEEDED,
                Resolution::Retry { .. } => metrics::JOBS_RETRIED,
                Resolution::Dead { .. } => metrics::JOBS_DEAD,
            };
            ::metrics::counter!(counter, &labels).increment(1);
            finish(&shared, &job, started_at_ms, resolution).await;
            result
        })
    }
}

/// What the middleware needs of a job after handing it to the service.
struct JobMeta {
    lease: kassa_common::queue::job::Lease,
    job_type: String,
    attempt: u32,
    created_at_ms: i64,
    run_at_ms: i64,
    last_error: Option<String>,
}

impl JobMeta {
    fn of(job: &ClaimedJob) -> JobMeta {
        JobMeta {
            lease: job.lease,
            job_type: job.job_type.clone(),
            attempt: job.attempt,
            created_at_ms: job.created_at_ms,
            run_at_ms: job.run_at_ms,
            last_error: job.last_error.clone(),
        }
    }
}

fn resolve_failure(error: &BoxDynError, job: &JobMeta, policy: &kassa_common::queue::retry::RetryPolicy) -> Resolution {
    let (transient, message) = if let Some(job_error) = error.downcast_ref::<JobError>() {
        (job_error.is_transient(), error_chain(job_error))
    } else if let Some(abort) = error.downcast_ref::<AbortError>() {
        // A panic or a timeout: a bug or a hang, worth a bounded number of retries.
        (true, error_chain(abort))
    } else {
        (true, error_chain(error.as_ref()))
    };
    if !transient {
        return Resolution::Dead { error: message };
    }
    let delay_ms = i64::try_from(policy.backoff(job.attempt).as_millis()).unwrap_or(i64::MAX / 2);
    let run_at_ms = now_ms().saturating_add(delay_ms);
    if database_unavailable(error.as_ref()) {
        // The job did not fail; the database went away under it (a
        // failover, a restart, a cut connection). It waits for the
        // database however long that takes, instead of going dead with
        // every other job that ran through the outage.
        return Resolution::Retry { run_at_ms, error: format!("{message} {NOT_COUNTED}"), counted: false };
    }
    if policy.is_last_attempt(job.attempt) {
        return Resolution::Dead {
            error: format!("attempts exhausted ({}/{}): {message}", job.attempt, policy.max_attempts),
        };
    }
    Resolution::Retry { run_at_ms, error: message, counted: true }
}

/// Whether `error` or one of its causes is the database being unreachable.
fn database_unavailable(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |error| error.source())
        .any(|cause| cause.downcast_ref::<sqlx::Error>().is_some_and(kassa_common::db::is_unavailable))
}

/// Commits the result, then frees the job's slot.
async fn finish<S: JobStore>(shared: &Shared<S>, job: &JobMeta, started_at_ms: i64, resolution: Resolution) {
    let ack = Ack {
        lease: job.lease,
        attempt: job.attempt,
        worker_id: shared.config.worker_id.clone(),
        started_at_ms,
        finished_at_ms: now_ms(),
        resolution,
    };
    if let Some(held) = shared.held().get_mut(&job.lease.job_id) {
        held.acking = true;
    }
    match acker::ack(&shared.acks, ack).await {
        Ok(AckResult::Applied) => {}
        Ok(AckResult::LeaseLost) => {
            ::metrics::counter!(metrics::LEASES_LOST).increment(1);
            tracing::warn!(
                job_id = %job.lease.job_id,
                job_type = %job.job_type,
                "result discarded: the lease expired and another worker holds the job"
            );
        }
        Err(error) => tracing::error!(
            job_id = %job.lease.job_id,
            job_type = %job.job_type,
            %error,
            "failed to record the job's result; it will run again when its lease expires"
        ),
    }
    shared.held().remove(&job.lease.job_id);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kassa_common::queue::job::{JobId, Lease};
    use kassa_common::queue::retry::RetryPolicy;
    use kassa_common::store::StoreError;

    use super::*;

    fn meta(attempt: u32) -> JobMeta {
        JobMeta {
            lease: Lease { job_id: JobId(1), token: 1 },
            job_type: "charge".to_owned(),
            attempt,
            created_at_ms: 0,
            run_at_ms: 0,
            last_error: None,
        }
    }

    fn resolve(error: JobError, attempt: u32) -> Resolution {
        let policy =
            RetryPolicy { max_attempts: 3, base_delay: Duration::from_millis(10), max_delay: Duration::from_secs(1) };
        resolve_failure(&(Box::new(error) as BoxDynError), &meta(attempt), &policy)
    }

    #[test]
    fn an_unreachable_database_does_not_use_up_the_last_attempt() {
        let cut = StoreError::Database(sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()));
        let resolution = resolve(crate::jobs::store_error(cut), 3);
        assert!(
            matches!(&resolution, Resolution::Retry { counted: false, error, .. } if error.ends_with(NOT_COUNTED)),
            "{resolution:?}"
        );
        let pool = resolve(JobError::from(sqlx::Error::PoolTimedOut), 3);
        assert!(matches!(pool, Resolution::Retry { counted: false, .. }), "{pool:?}");
    }

    #[test]
    fn other_transient_failures_count_and_the_last_one_is_dead() {
        let smtp = resolve(JobError::transient("smtp down"), 2);
        assert!(matches!(smtp, Resolution::Retry { counted: true, .. }), "{smtp:?}");
        let last = resolve(JobError::transient("smtp down"), 3);
        assert!(
            matches!(&last, Resolution::Dead { error } if error.starts_with("attempts exhausted (3/3)")),
            "{last:?}"
        );
        let bug = resolve(JobError::from(sqlx::Error::RowNotFound), 3);
        assert!(matches!(bug, Resolution::Dead { .. }), "a database error that is not an outage still counts: {bug:?}");
        let declined = resolve(JobError::permanent("card declined"), 1);
        assert!(matches!(declined, Resolution::Dead { .. }), "{declined:?}");
    }
}
