//! Phase 4, open loop: orders offered at a fixed rate while one worker
//! process runs. Unlike the closed-loop clients of the other phases, the
//! load generator does not wait for answers: each request is spawned at its
//! tick of a fixed schedule, so a slow system faces the same offered load
//! instead of being asked less (no coordinated omission). Latency from
//! acceptance to confirmation comes from the database's timestamps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use kassa_common::db::Pool;

use super::processes::{
    Confirmations, Target, record_lost_leases, scalar, start_worker, stop_workers, wait_orders_left_pending,
    wait_quiescent,
};
use super::{Options, Setup};
use crate::app::TestApp;
use crate::load::{peak_rss_mib, percentile, reset_peak_rss};
use crate::results::Figures;

/// Phase 4; returns a line saying how it went.
pub(super) async fn open_loop(
    options: &Options,
    setup: &Setup,
    app: &Arc<TestApp>,
    pool: &Pool,
    target: &Arc<Target>,
    figures: &mut Figures,
) -> anyhow::Result<String> {
    let workers = vec![start_worker(app, format!("{}-open-loop", setup.name), setup.sync, &options.worker_env).await?];
    let first_order = scalar(pool, "select coalesce(max(id), 0) + 1 from orders").await?;
    reset_peak_rss(app.process.pid())?;

    let rate = options.open_loop_rate;
    let total = (rate * options.open_loop_secs).round().max(1.0) as u64;
    let started = tokio::time::Instant::now();
    let mut requests = Vec::with_capacity(total as usize);
    for sequence in 0..total {
        // Absolute ticks: a late tick sends at once, and the schedule does not drift.
        tokio::time::sleep_until(started + Duration::from_secs_f64(sequence as f64 / rate)).await;
        let target = Arc::clone(target);
        requests.push(tokio::spawn(async move {
            let sent = Instant::now();
            target.place_order(sequence as usize).await.map(|_| sent.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let sending = started.elapsed();
    let mut post_latencies = Vec::with_capacity(requests.len());
    let mut failures = Vec::new();
    for request in requests {
        match request.await.map_err(|error| anyhow!("an open-loop request panicked: {error}"))? {
            Ok(latency_ms) => post_latencies.push(latency_ms),
            Err(error) => failures.push(error.to_string()),
        }
    }
    let answered = started.elapsed();
    if !failures.is_empty() {
        anyhow::bail!("open loop: {} of {total} requests failed, e.g. {:?}", failures.len(), &failures[..1]);
    }
    post_latencies.sort_by(f64::total_cmp);

    wait_orders_left_pending(pool, first_order, "open-loop order").await?;
    wait_quiescent(pool).await?;
    let confirmations = Confirmations::read(pool, first_order, "open-loop").await?;
    let latencies = &confirmations.latencies_ms;

    let section = format!("open loop ({rate:.0} orders/s offered for {} s, 1 worker)", options.open_loop_secs);
    figures.record(&section, "offered rate achieved (requests sent)", "req/s", total as f64 / sending.as_secs_f64());
    figures.record(&section, "accepted (202) rate", "req/s", post_latencies.len() as f64 / answered.as_secs_f64());
    figures.record(
        &section,
        "confirmed rate (first accepted → last confirmed)",
        "orders/s",
        confirmations.rate_per_sec(latencies.len() as f64),
    );
    figures.record(&section, "accepted → confirmed p50", "ms", percentile(latencies, 0.50));
    figures.record(&section, "accepted → confirmed p99", "ms", percentile(latencies, 0.99));
    figures.record(&section, "POST /orders/ latency p50", "ms", percentile(&post_latencies, 0.50));
    figures.record(&section, "POST /orders/ latency p99", "ms", percentile(&post_latencies, 0.99));

    let rss = "peak RSS (VmHWM, reset at the start of each phase)";
    figures.record(rss, "kassa-api, open loop", "MiB", peak_rss_mib(app.process.pid())?);
    figures.record(rss, "largest kassa-worker, open loop", "MiB", peak_rss_mib(workers[0].process.pid())?);
    record_lost_leases(figures, "open loop, 1 worker", &workers).await;
    stop_workers(workers);
    Ok(format!(
        "  [{}] open loop: {total} orders offered at {rate:.0}/s, confirmed p50 {:.0} ms, p99 {:.0} ms",
        setup.name,
        percentile(latencies, 0.50),
        percentile(latencies, 0.99)
    ))
}
