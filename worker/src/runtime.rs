//! Running the worker: the apalis worker over Kassa's queue backend, until
//! shutdown, then a graceful stop.

use std::future::Future;
use std::sync::Arc;

use apalis::prelude::WorkerBuilder;
use futures::FutureExt;
use kassa_common::db::Db;
use kassa_common::queue::DbJobStore;

use crate::config::WorkerConfig;
use crate::queue;
use crate::registry::{Dispatcher, Registry};
use crate::services::Services;

/// Runs every registered job type until `shutdown` resolves; see [`run_with_registry`].
pub async fn run<F>(config: WorkerConfig, db: Db, shutdown: F) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    run_with_registry(config, db, crate::registry_with_all_jobs(), shutdown).await
}

/// Claims and runs jobs of `config`'s types with `registry`'s handlers until
/// `shutdown` resolves. Then it stops claiming, lets running jobs finish for
/// up to the grace period, hands back every job it still holds (claimable at
/// once by other workers) and returns `Ok`.
pub async fn run_with_registry<F>(config: WorkerConfig, db: Db, registry: Registry, shutdown: F) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let worker_id: Arc<str> = config.queue.worker_id.as_str().into();
    tracing::info!(
        worker_id = %worker_id,
        job_types = %config.queue.job_types.join(","),
        concurrency = config.queue.concurrency,
        lease_ms = config.queue.lease.as_millis() as u64,
        "worker {worker_id} starting"
    );
    kassa_common::queue::metrics::register_zeroes(&config.queue.job_types);
    let sampler = config.queue.stats_every.map(|every| {
        tokio::spawn(crate::telemetry::sample_database(db.pool().clone(), config.queue.job_types.clone(), every))
    });
    // On PostgreSQL, new jobs pushed on any host wake this worker at once.
    let listener = kassa_common::queue::postgres::listen(&db);
    let store = DbJobStore::new(db.clone());
    let (backend, runtime) = queue::start(store, config.queue.clone());
    let services = Services::new(&db, &config);
    let dispatcher = Dispatcher::new(Arc::new(registry), db, worker_id.clone(), services, config.queue.retry.clone());
    // Panics are caught by the dispatcher, not by apalis' `catch_panic()`:
    // that layer's `fn(&Box<dyn Any + Send>)` type defeats rustc's `Send`
    // proof for this future, and callers need to `tokio::spawn` it.
    let worker = WorkerBuilder::new(&*worker_id).backend(backend).build(dispatcher);

    let shutdown = shutdown.shared();
    let stop = shutdown.clone().map(Ok::<(), std::io::Error>);
    let grace = config.shutdown_grace;
    let result = tokio::select! {
        result = worker.run_until(stop) => {
            result.map_err(|error| anyhow::anyhow!("the apalis worker failed: {error}"))
        }
        () = async {
            shutdown.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "jobs still running after the shutdown grace period; handing them back"
            );
            Ok(())
        }
    };
    // Whatever happened, give back what we hold so other workers need not
    // wait for our leases to expire.
    runtime.shutdown().await;
    for task in [sampler, listener].into_iter().flatten() {
        task.abort();
    }
    tracing::info!(worker_id = %worker_id, "worker {worker_id} stopped");
    result
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kassa_common::db::scratch::ScratchDb;
    use kassa_common::queue::{NewJob, enqueue};

    use super::*;
    use crate::WorkerOptions;
    use crate::jobs::Probe;

    fn options() -> WorkerOptions {
        let outbox = std::env::temp_dir().join("kassa-worker-runtime-test-outbox");
        WorkerOptions {
            concurrency: 4,
            lease_secs: 30.0,
            claim_batch: 16,
            shutdown_grace_secs: 5.0,
            job_retention_hours: 1.0,
            worker_id: Some("in-process".into()),
            mail_outbox_dir: Some(outbox),
            ..WorkerOptions::defaults()
        }
    }

    fn now_us() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_micros() as i64)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_push_in_this_process_wakes_an_idle_worker_at_once() {
        let scratch = ScratchDb::sqlite().await;
        let db = scratch.db.clone();
        let registry = crate::registry_with_all_jobs();
        let mut config = options().into_config(&registry).expect("config");
        // Polling so slow that only the in-process wake-up explains a fast start.
        config.queue.poll_min = Duration::from_secs(2);
        config.queue.poll_max = Duration::from_secs(2);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = tokio::spawn(run_with_registry(config, db.clone(), registry, async {
            let _ = stopped.await;
        }));

        let mut latencies_us = Vec::new();
        for key in 0..10 {
            // Let the worker fall idle between pushes.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let pushed_us = now_us();
            let job = NewJob::new(&Probe { key, ..Probe::default() }).expect("job");
            db.write(move |tx| {
                let job = job.clone();
                Box::pin(async move { enqueue(tx, &job).await })
            })
            .await
            .expect("enqueue");
            let started_us = loop {
                let started: Option<i64> =
                    sqlx::query_scalar("select started_us from queue_probe_runs where probe_key = ?1")
                        .bind(key)
                        .fetch_optional(db.pool())
                        .await
                        .expect("query");
                if let Some(started) = started {
                    break started;
                }
                assert!(now_us() - pushed_us < 1_500_000, "job {key} did not start within 1.5 s");
                tokio::time::sleep(Duration::from_millis(1)).await;
            };
            latencies_us.push(started_us - pushed_us);
        }
        latencies_us.sort_unstable();
        let median_ms = latencies_us[latencies_us.len() / 2] as f64 / 1000.0;
        eprintln!("in-process enqueue→start: median {median_ms:.2} ms, all {latencies_us:?} µs");
        assert!(median_ms < 25.0, "median {median_ms} ms");

        stop.send(()).expect("worker is running");
        worker.await.expect("join").expect("the worker stops cleanly");
        let running: i64 = sqlx::query_scalar("select count(*) from jobs where status <> 'succeeded'")
            .fetch_one(db.pool())
            .await
            .expect("count");
        assert_eq!(running, 0);
    }
}
