//! The queue's runtime: apalis-core's [`Backend`] over a [`JobStore`]. The
//! apalis worker pulls claimed jobs from here, and the backend's middleware
//! records each result under the job's lease. The store itself (tables,
//! leases, per-backend SQL) is `kassa_common::queue`.
//!
//! [`start`] spawns three tasks beside the apalis worker:
//! - the fetcher claims batches while there are free slots, and when idle
//!   waits for an in-process push or polls with backoff;
//! - the acker commits results in groups (one transaction for all the acks
//!   that arrived while the previous group was committing);
//! - maintenance extends the leases of held jobs, rescues expired leases,
//!   prunes finished jobs and samples queue depth.
//!
//! Payloads are not decoded here: the worker's service does that, so an
//! undecodable payload is a dead job and never a backend error (a backend
//! error stops an apalis worker).
//!
//! # Layout
//! - this file: configuration, the shared state, the `Backend` impl, shutdown.
//! - `fetcher`, `acker`, `maintenance`: the three tasks.
//! - `ack_layer`: the tower middleware that turns a handler's result into an ack.

mod ack_layer;
mod acker;
mod fetcher;
mod maintenance;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::task::Task;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

pub use ack_layer::{AckLayer, AckService};

use kassa_common::queue::job::{ClaimedJob, JobId, Lease};
use kassa_common::queue::outcome::error_chain;
use kassa_common::queue::retry::RetryPolicies;
use kassa_common::queue::store::{JobStore, QueueError, Release};

/// How a worker process uses the queue.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// This worker's id, recorded as lease owner and in attempt rows.
    pub worker_id: String,
    /// The job types this worker claims.
    pub job_types: Vec<String>,
    /// Jobs held at once (running, or claimed and about to run).
    pub concurrency: u32,
    /// Most jobs taken by one claim.
    pub claim_batch: u32,
    /// Lease length; extended every `lease / 3` while the job runs.
    pub lease: Duration,
    /// Shortest idle poll delay (across processes; in-process pushes wake at once).
    pub poll_min: Duration,
    /// Longest idle poll delay.
    pub poll_max: Duration,
    /// Most acks committed in one transaction.
    pub ack_batch: usize,
    /// How long succeeded and discarded jobs are kept.
    pub retention: Duration,
    /// Jobs deleted per pruning transaction.
    pub prune_batch: u32,
    /// How often retention runs.
    pub prune_every: Duration,
    /// How often queue depth is sampled into metrics (`None`: never).
    pub stats_every: Option<Duration>,
    /// Retry policies by job type.
    pub retry: RetryPolicies,
}

impl QueueConfig {
    /// Defaults for a worker `worker_id` taking `job_types`.
    pub fn new(worker_id: impl Into<String>, job_types: Vec<String>) -> QueueConfig {
        QueueConfig {
            worker_id: worker_id.into(),
            job_types,
            concurrency: 64,
            claim_batch: 128,
            lease: Duration::from_secs(30),
            poll_min: Duration::from_millis(2),
            poll_max: Duration::from_millis(20),
            ack_batch: 512,
            retention: Duration::from_secs(7 * 24 * 3600),
            prune_batch: 500,
            prune_every: Duration::from_secs(60),
            stats_every: Some(Duration::from_secs(5)),
            retry: RetryPolicies::default(),
        }
    }

    fn heartbeat_every(&self) -> Duration {
        (self.lease / 3).max(Duration::from_millis(50))
    }

    fn rescue_every(&self) -> Duration {
        (self.lease / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

/// A job this process holds a lease on.
struct Held {
    lease: Lease,
    attempt: u32,
    /// When its handler started; `None` while it waits in the buffer.
    started_at_ms: Option<i64>,
    /// Its result has been handed to the acker: from then on the ack, not
    /// a heartbeat, says whether the lease was lost (a heartbeat racing a
    /// committed ack would find the job finished and cry wolf).
    acking: bool,
    /// Frees the concurrency slot when the job is done.
    _slot: OwnedSemaphorePermit,
}

/// State shared by the backend, its middleware and its tasks.
struct Shared<S> {
    store: S,
    config: QueueConfig,
    held: Mutex<HashMap<JobId, Held>>,
    acks: mpsc::UnboundedSender<acker::AckRequest>,
    stop: watch::Sender<bool>,
    fetcher: Mutex<Option<JoinHandle<()>>>,
}

impl<S: JobStore> Shared<S> {
    fn held(&self) -> MutexGuard<'_, HashMap<JobId, Held>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (single inserts and removes), so a poisoned lock is still usable.
        self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn held_leases(&self) -> Vec<Lease> {
        self.held().values().map(|held| held.lease).collect()
    }

    /// Whether `lease` is still held by a job whose result is not yet on
    /// its way to the store: only such a lease can be lost to a heartbeat.
    fn held_unacked(&self, lease: &Lease) -> bool {
        self.held().get(&lease.job_id).is_some_and(|held| !held.acking && held.lease.token == lease.token)
    }

    /// Stops claiming and waits for a claim in progress to finish.
    async fn stop_fetching(&self) {
        self.stop.send_replace(true);
        let fetcher = self.fetcher.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(fetcher) = fetcher
            && let Err(error) = fetcher.await
        {
            tracing::error!(%error, "job fetcher task failed");
        }
    }

    /// Hands back every job still held, claimable at once by any worker.
    async fn release_held(&self) {
        let releases: Vec<Release> = self
            .held()
            .drain()
            .map(|(_, held)| Release {
                lease: held.lease,
                attempt: held.attempt,
                worker_id: self.config.worker_id.clone(),
                started_at_ms: held.started_at_ms,
            })
            .collect();
        if releases.is_empty() {
            return;
        }
        match self.store.release(&releases).await {
            Ok(released) => tracing::info!(released, "released held jobs"),
            Err(error) => tracing::error!(
                error = %error_chain(&error),
                "failed to release held jobs; they will be rescued when their leases expire"
            ),
        }
    }
}

/// The apalis side of the queue: a [`Backend`] yielding claimed jobs as
/// `Task<ClaimedJob>`, whose middleware ([`AckLayer`]) records results.
pub struct QueueBackend<S> {
    shared: Arc<Shared<S>>,
    jobs: mpsc::UnboundedReceiver<ClaimedJob>,
    closing: Option<BoxFuture<'static, ()>>,
}

impl<S> std::fmt::Debug for QueueBackend<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueBackend").finish_non_exhaustive()
    }
}

/// The tasks running beside a [`QueueBackend`]; shut them down with
/// [`QueueRuntime::shutdown`] once the apalis worker has stopped.
pub struct QueueRuntime<S> {
    shared: Arc<Shared<S>>,
    acker: JoinHandle<()>,
    maintenance: JoinHandle<()>,
}

impl<S> std::fmt::Debug for QueueRuntime<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueRuntime").finish_non_exhaustive()
    }
}

/// Starts claiming jobs for `config` from `store`: returns the backend to
/// hand to an apalis `WorkerBuilder` and the runtime to shut down after it.
/// Must be called inside a Tokio runtime.
pub fn start<S: JobStore>(store: S, config: QueueConfig) -> (QueueBackend<S>, QueueRuntime<S>) {
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1) as usize));
    let shared = Arc::new(Shared {
        store,
        config,
        held: Mutex::new(HashMap::new()),
        acks: ack_tx,
        stop: stop_tx,
        fetcher: Mutex::new(None),
    });
    let acker = tokio::spawn(acker::run(shared.store.clone(), ack_rx, shared.config.ack_batch));
    let fetcher = tokio::spawn(fetcher::run(shared.clone(), slots, jobs_tx, stop_rx.clone()));
    *shared.fetcher.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(fetcher);
    let maintenance = tokio::spawn(maintenance::run(shared.clone(), stop_rx));
    (QueueBackend { shared: shared.clone(), jobs: jobs_rx, closing: None }, QueueRuntime { shared, acker, maintenance })
}

impl<S: JobStore> QueueRuntime<S> {
    /// Stops claiming, commits pending acks, releases every job still held
    /// (claimable at once elsewhere) and stops the tasks. Safe to call after
    /// the backend already closed, or instead of it when in-flight handlers
    /// were abandoned at the end of a shutdown grace period.
    pub async fn shutdown(self) {
        self.shared.stop_fetching().await;
        acker::flush(&self.shared.acks).await;
        self.shared.release_held().await;
        // Dropping the last sender ends the acker once it has drained.
        drop(self.shared);
        if let Err(error) = self.maintenance.await {
            tracing::error!(%error, "queue maintenance task failed");
        }
        // The backend (and the middleware it handed out) may still hold
        // senders if the worker future was dropped; don't wait on them.
        self.acker.abort();
    }

    /// Jobs this process holds leases on right now.
    pub fn held_jobs(&self) -> usize {
        self.shared.held().len()
    }
}

fn to_task(job: ClaimedJob, worker_id: &str) -> Task<ClaimedJob> {
    let task_id = TaskId::from_int(u64::try_from(job.lease.job_id.0).unwrap_or_default());
    // apalis counts the attempt itself when the task starts.
    let previous_attempts = job.attempt.saturating_sub(1) as usize;
    TaskBuilder::new(job).task_id(task_id).attempt(previous_attempts).lock_by(Some(worker_id.to_owned())).build()
}

impl<S: JobStore> Backend for QueueBackend<S> {
    type Task = Task<ClaimedJob>;
    type Error = QueueError;

    fn poll_ready(&mut self, _cx: &mut Context<'_>, _worker: &WorkerContext) -> Poll<Result<(), QueueError>> {
        // Concurrency is bounded by the fetcher, which only claims for free slots.
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Option<Result<Task<ClaimedJob>, QueueError>>> {
        self.jobs.poll_recv(cx).map(|job| job.map(|job| Ok(to_task(job, &self.shared.config.worker_id))))
    }

    fn poll_close(&mut self, cx: &mut Context<'_>, _worker: &WorkerContext) -> Poll<Result<(), QueueError>> {
        // Every handler has finished (apalis waits for them): stop claiming,
        // commit their acks, and give back the jobs claimed but not started.
        let closing = self.closing.get_or_insert_with(|| {
            let shared = self.shared.clone();
            async move {
                shared.stop_fetching().await;
                acker::flush(&shared.acks).await;
                shared.release_held().await;
            }
            .boxed()
        });
        closing.poll_unpin(cx).map(Ok)
    }
}

impl<S: JobStore> BackendConfig for QueueBackend<S> {
    type Args = ClaimedJob;
    type Id = JobId;
    type Kind = Ephemeral;
    type Config = QueueConfig;
    type Layer = AckLayer<S>;

    fn config(&self) -> &QueueConfig {
        &self.shared.config
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> AckLayer<S> {
        AckLayer::new(self.shared.clone())
    }
}

/// Resolves once `stop` says so (at once if it already does).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send; drop it before returning.
    let _ = stop.wait_for(|stopped| *stopped).await.is_ok();
}
