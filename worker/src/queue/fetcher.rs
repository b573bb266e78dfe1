//! The claim loop: takes as many due jobs as there are free slots, in one
//! transaction, and hands them to the apalis worker; when nothing is due it
//! waits for an in-process push, or polls a cheap read with backoff.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::{Held, Shared};
use kassa_common::queue::job::ClaimedJob;
use kassa_common::queue::metrics;
use kassa_common::queue::outcome::error_chain;
use kassa_common::queue::store::{ClaimRequest, JobStore};
use kassa_common::queue::wake::{self, AdaptivePoll};

pub(super) async fn run<S: JobStore>(
    shared: Arc<Shared<S>>,
    slots: Arc<Semaphore>,
    jobs: mpsc::UnboundedSender<ClaimedJob>,
    mut stop: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let mut poll = AdaptivePoll::new(config.poll_min, config.poll_max);
    let mut error_delay = Duration::from_millis(10);
    let mut request = ClaimRequest {
        worker_id: config.worker_id.clone(),
        job_types: config.job_types.clone(),
        limit: 0,
        lease: config.lease,
    };
    loop {
        let first = tokio::select! {
            biased;
            _ = super::stopped(&mut stop) => return,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        let mut free: Vec<OwnedSemaphorePermit> = vec![first];
        while free.len() < config.claim_batch.max(1) as usize {
            match slots.clone().try_acquire_owned() {
                Ok(slot) => free.push(slot),
                Err(_) => break,
            }
        }
        request.limit = u32::try_from(free.len()).unwrap_or(u32::MAX);
        let seen_generation = wake::generation();
        let claimed = match shared.store.claim(&request).await {
            Ok(claimed) => {
                error_delay = Duration::from_millis(10);
                claimed
            }
            Err(error) => {
                tracing::error!(error = %error_chain(&error), "failed to claim jobs; retrying");
                drop(free);
                tokio::select! {
                    _ = super::stopped(&mut stop) => return,
                    _ = tokio::time::sleep(error_delay) => {}
                }
                error_delay = (error_delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let claimed_all = claimed.len() == free.len();
        if !claimed.is_empty() {
            ::metrics::histogram!(metrics::CLAIM_BATCH_SIZE).record(claimed.len() as f64);
            poll.reset();
            let mut held = shared.held();
            for (job, slot) in claimed.into_iter().zip(free.drain(..)) {
                held.insert(
                    job.lease.job_id,
                    Held { lease: job.lease, attempt: job.attempt, started_at_ms: None, acking: false, _slot: slot },
                );
                // If the worker is gone the job stays held and is released at shutdown.
                let _ = jobs.send(job);
            }
        }
        drop(free);
        if claimed_all {
            // There may be more: claim again as soon as slots free up.
            continue;
        }
        // Nothing more is due. Wait for a push in this process, or poll.
        loop {
            let delay = poll.next_delay();
            tokio::select! {
                biased;
                _ = super::stopped(&mut stop) => return,
                _ = wake::pushed_since(seen_generation) => break,
                _ = tokio::time::sleep(delay) => {
                    match shared.store.has_due_jobs(&request.job_types).await {
                        Ok(true) => break,
                        Ok(false) => {}
                        Err(error) => tracing::warn!(
                            error = %error_chain(&error), "failed to look for due jobs"
                        ),
                    }
                }
            }
        }
    }
}
