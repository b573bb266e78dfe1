//! Housekeeping beside the claim loop: heartbeats that extend the leases of
//! held jobs, rescue of jobs whose lease expired (their worker died), retention
//! pruning in small batches, and queue-depth sampling for metrics.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{MissedTickBehavior, interval};

use super::Shared;
use kassa_common::db::now_ms;
use kassa_common::queue::job::JobState;
use kassa_common::queue::metrics;
use kassa_common::queue::outcome::error_chain;
use kassa_common::queue::store::JobStore;

pub(super) async fn run<S: JobStore>(shared: Arc<Shared<S>>, mut stop: watch::Receiver<bool>) {
    // Heartbeats have a loop of their own: a long prune or a slow rescue
    // must never delay the extension of a held lease.
    let heartbeats = tokio::spawn(heartbeats(shared.clone(), stop.clone()));
    let config = &shared.config;
    let mut rescue = interval(config.rescue_every());
    let mut prune = interval(config.prune_every);
    let mut stats = interval(config.stats_every.unwrap_or(Duration::from_secs(3600)));
    for timer in [&mut rescue, &mut prune, &mut stats] {
        timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    }
    let mut prune_stop = stop.clone();
    loop {
        tokio::select! {
            biased;
            _ = super::stopped(&mut stop) => break,
            _ = rescue.tick() => rescue_expired(&shared).await,
            _ = prune.tick() => prune_finished(&shared, &mut prune_stop).await,
            _ = stats.tick(), if config.stats_every.is_some() => sample_stats(&shared).await,
        }
    }
    if let Err(error) = heartbeats.await {
        tracing::error!(%error, "heartbeat task failed");
    }
}

async fn heartbeats<S: JobStore>(shared: Arc<Shared<S>>, mut stop: watch::Receiver<bool>) {
    let mut heartbeat = interval(shared.config.heartbeat_every());
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = super::stopped(&mut stop) => return,
            _ = heartbeat.tick() => extend_leases(&shared).await,
        }
    }
}

async fn extend_leases<S: JobStore>(shared: &Shared<S>) {
    let leases = shared.held_leases();
    if leases.is_empty() {
        return;
    }
    let expires_at_ms = now_ms().saturating_add(duration_ms(shared.config.lease));
    match shared.store.extend_leases(&leases, expires_at_ms).await {
        Ok(lost) => {
            // A job whose ack committed while the heartbeat was on its way
            // is finished, not lost; its ack reports a real loss itself.
            for lease in lost.into_iter().filter(|lease| shared.held_unacked(lease)) {
                ::metrics::counter!(metrics::LEASES_LOST).increment(1);
                tracing::warn!(
                    job_id = %lease.job_id,
                    "lease lost to another worker; this run's result will be discarded"
                );
            }
        }
        Err(error) => tracing::error!(error = %error_chain(&error), "failed to extend leases"),
    }
}

async fn rescue_expired<S: JobStore>(shared: &Shared<S>) {
    match shared.store.rescue_expired(now_ms()).await {
        Ok(rescued) => {
            for job in rescued {
                ::metrics::counter!(metrics::LEASE_RESCUES).increment(1);
                tracing::warn!(
                    job_id = %job.job_id,
                    job_type = %job.job_type,
                    lost_by = %job.lost_by,
                    "rescued job whose lease expired"
                );
            }
        }
        Err(error) => tracing::error!(error = %error_chain(&error), "failed to rescue expired leases"),
    }
}

async fn prune_finished<S: JobStore>(shared: &Shared<S>, stop: &mut watch::Receiver<bool>) {
    let config = &shared.config;
    let finished_before_ms = now_ms().saturating_sub(duration_ms(config.retention));
    loop {
        match shared.store.prune_finished(finished_before_ms, config.prune_batch).await {
            Ok(deleted) => {
                ::metrics::counter!(metrics::JOBS_PRUNED).increment(deleted);
                if deleted < u64::from(config.prune_batch) {
                    return;
                }
            }
            Err(error) => {
                tracing::error!(error = %error_chain(&error), "failed to prune finished jobs");
                return;
            }
        }
        // Let claims and acks take the write lock between batches.
        tokio::select! {
            _ = super::stopped(stop) => return,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

async fn sample_stats<S: JobStore>(shared: &Shared<S>) {
    match shared.store.stats().await {
        Ok(stats) => {
            // Zero the series of types we know, so a drained queue reads 0, not its last value.
            for job_type in &shared.config.job_types {
                for state in [JobState::Pending, JobState::Running, JobState::Dead] {
                    ::metrics::gauge!(metrics::QUEUE_DEPTH, "job_type" => job_type.clone(), "state" => state.as_str())
                        .set(0.0);
                }
            }
            for depth in stats.depth {
                ::metrics::gauge!(metrics::QUEUE_DEPTH, "job_type" => depth.job_type, "state" => depth.state.as_str())
                    .set(depth.count as f64);
            }
            // The oldest pending age is sampled per job type by the worker's
            // database sampler (`kassa_worker::telemetry::sample_database`).
        }
        Err(error) => tracing::warn!(error = %error_chain(&error), "failed to sample queue depth"),
    }
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2)
}
