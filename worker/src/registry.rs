//! Job types and their handlers: the [`Job`] trait every job implements, the
//! [`Registry`] mapping a job type to its handler, and the apalis service
//! ([`Dispatcher`]) that decodes a claimed job's payload and runs it.

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use apalis::prelude::Task;
use apalis_core::layers::Service;
use futures::FutureExt;
use futures::future::BoxFuture;
use kassa_common::db::Db;
use kassa_common::queue::{ClaimedJob, JobError, JobId, JobPayload, Outcome, RetryPolicies, RetryPolicy};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::services::Services;

/// What a running job gets besides its payload.
#[derive(Clone, Debug)]
pub struct JobContext {
    /// The database: reads from its pool, writes as units of work.
    pub db: Db,
    /// The job being run.
    pub job_id: JobId,
    /// This attempt's number, starting at 1.
    pub attempt: u32,
    /// The worker running it.
    pub worker_id: Arc<str>,
    /// Attempts allowed for this job in all; see [`JobContext::is_last_attempt`].
    pub max_attempts: u32,
    /// The payment gateway and other services.
    pub services: Services,
}

impl JobContext {
    /// Whether a transient failure now would make the job dead, so the
    /// handler should compensate (e.g. cancel the order) instead of failing.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// A job type: a serde payload of ids, and how to run it.
///
/// Implement it by forwarding to the payload's own `pub async fn run`, so
/// tests call the same code:
///
/// ```ignore
/// impl Job for ReserveStock {
///     async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
///         self.run(&ctx).await
///     }
/// }
/// ```
pub trait Job: JobPayload + DeserializeOwned + Send + Sync + 'static {
    /// How failures of this type are retried (overridable by configuration).
    fn retry_policy() -> RetryPolicy {
        RetryPolicy::default()
    }

    /// Runs the job once. Must be idempotent: delivery is at least once.
    fn perform(self, ctx: JobContext) -> impl Future<Output = Result<Outcome, JobError>> + Send;
}

type Handler = Arc<dyn Fn(&str, JobContext) -> BoxFuture<'static, Result<Outcome, JobError>> + Send + Sync>;

/// The job types a worker can run.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<&'static str, Handler>,
    policies: BTreeMap<&'static str, RetryPolicy>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("job_types", &self.job_types()).finish()
    }
}

impl Registry {
    /// A registry with no job types.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds job type `J`. A payload that does not decode as `J` fails
    /// permanently (the job goes to `dead` with the decode error).
    pub fn register<J: Job>(&mut self) -> &mut Registry {
        let handler: Handler = Arc::new(|payload: &str, ctx: JobContext| match serde_json::from_str::<J>(payload) {
            Ok(job) => job.perform(ctx).boxed(),
            Err(error) => futures::future::ready(Err(JobError::permanent(format!(
                "payload does not decode as a {} job: {error}",
                J::JOB_TYPE
            ))))
            .boxed(),
        });
        self.handlers.insert(J::JOB_TYPE, handler);
        self.policies.insert(J::JOB_TYPE, J::retry_policy());
        self
    }

    /// The registered job types, sorted.
    pub fn job_types(&self) -> Vec<&'static str> {
        self.handlers.keys().copied().collect()
    }

    /// Each type's own retry policy.
    pub fn retry_policies(&self) -> RetryPolicies {
        let mut policies = RetryPolicies::default();
        for (job_type, policy) in &self.policies {
            policies.set(*job_type, *policy);
        }
        policies
    }
}

/// The apalis service: decodes a claimed job's payload and runs its handler.
#[derive(Clone)]
pub struct Dispatcher {
    registry: Arc<Registry>,
    db: Db,
    worker_id: Arc<str>,
    services: Services,
    retry: Arc<RetryPolicies>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("worker_id", &self.worker_id).finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Runs `registry`'s handlers against `db` as worker `worker_id`,
    /// with `services` and the effective `retry` policies.
    pub fn new(
        registry: Arc<Registry>,
        db: Db,
        worker_id: Arc<str>,
        services: Services,
        retry: RetryPolicies,
    ) -> Dispatcher {
        Dispatcher { registry, db, worker_id, services, retry: Arc::new(retry) }
    }
}

impl Service<Task<ClaimedJob>> for Dispatcher {
    type Response = Outcome;
    type Error = JobError;
    type Future = BoxFuture<'static, Result<Outcome, JobError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), JobError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, task: Task<ClaimedJob>) -> Self::Future {
        let job = task.args;
        let span = tracing::info_span!(
            "job",
            job_id = %job.lease.job_id,
            job_type = %job.job_type,
            attempt = job.attempt,
        );
        let Some(handler) = self.registry.handlers.get(job.job_type.as_str()) else {
            let error = JobError::permanent(format!("no handler for job type {:?}", job.job_type));
            return futures::future::ready(Err(error)).boxed();
        };
        let ctx = JobContext {
            db: self.db.clone(),
            job_id: job.lease.job_id,
            attempt: job.attempt,
            worker_id: self.worker_id.clone(),
            max_attempts: self.retry.get(&job.job_type).max_attempts,
            services: self.services.clone(),
        };
        let job_type = job.job_type.clone();
        let running = span.in_scope(|| std::panic::catch_unwind(AssertUnwindSafe(|| handler(&job.payload, ctx))));
        async move {
            // A panicking handler is a bug: count it as a transient failure so
            // it is retried a bounded number of times, and keep the worker alive.
            let result = match running {
                Ok(running) => match AssertUnwindSafe(running).catch_unwind().await {
                    Ok(result) => result,
                    Err(panic) => Err(panicked(&job_type, panic.as_ref())),
                },
                Err(panic) => Err(panicked(&job_type, panic.as_ref())),
            };
            match &result {
                Ok(outcome) => tracing::debug!(?outcome, "job finished"),
                Err(error) => tracing::warn!(
                    error = %kassa_common::queue::outcome::error_chain(error),
                    "job failed"
                ),
            }
            result
        }
        .instrument(span)
        .boxed()
    }
}

fn panicked(job_type: &str, panic: &(dyn Any + Send)) -> JobError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    JobError::transient(format!("the {job_type} handler panicked: {message}"))
}

#[cfg(test)]
mod tests {
    use apalis::prelude::TaskBuilder;
    use kassa_common::queue::Lease;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Panicky {}

    impl JobPayload for Panicky {
        const JOB_TYPE: &'static str = "panicky";
    }

    impl Job for Panicky {
        async fn perform(self, _ctx: JobContext) -> Result<Outcome, JobError> {
            panic!("boom")
        }
    }

    fn claimed(job_type: &str, payload: &str) -> Task<ClaimedJob> {
        TaskBuilder::new(ClaimedJob {
            lease: Lease { job_id: JobId(1), token: 1 },
            job_type: job_type.to_owned(),
            payload: payload.to_owned(),
            attempt: 1,
            created_at_ms: 0,
            run_at_ms: 0,
            claimed_at_ms: 0,
            last_error: None,
        })
        .build()
    }

    #[tokio::test]
    async fn panics_are_transient_failures_and_bad_payloads_permanent_ones() {
        let mut registry = crate::registry_with_all_jobs();
        registry.register::<Panicky>();
        let scratch = kassa_common::db::scratch::ScratchDb::sqlite().await;
        let outbox = tempfile::tempdir().expect("outbox");
        let config = crate::WorkerOptions::defaults()
            .with_data_dir(outbox.path())
            .into_config(&crate::registry_with_all_jobs())
            .expect("config");
        let services = Services::new(&scratch.db, &config);
        let mut dispatcher =
            Dispatcher::new(Arc::new(registry), scratch.db.clone(), "test".into(), services, RetryPolicies::default());

        let panicked = dispatcher.call(claimed("panicky", "{}")).await.expect_err("panics fail");
        assert!(panicked.is_transient());
        assert!(panicked.to_string().contains("the panicky handler panicked: boom"), "{panicked}");

        let undecodable = dispatcher.call(claimed("noop", "[1, 2")).await.expect_err("bad payload");
        assert!(!undecodable.is_transient());
        assert!(undecodable.to_string().contains("payload does not decode as a noop job"));

        let done = dispatcher.call(claimed("noop", "{}")).await.expect("noop runs");
        assert_eq!(done, Outcome::Done);
    }
}
