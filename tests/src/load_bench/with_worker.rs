//! Phase 7, `kassa-api --with-worker`: the API restarted on the same data
//! with the worker embedded (no separate worker process) under the same
//! closed-loop client load as the end-to-end phases. Besides the end-to-end
//! rate it shows whether the embedded worker keeps up while the API is
//! busy: how many of the orders were already confirmed when the load
//! stopped (issue 13 saw every one still pending).

use std::sync::Arc;

use kassa_common::db::Pool;

use super::processes::{
    Confirmations, LOST_LEASES, Target, catch, check_failures, lost_leases, scalar, stop, wait_orders_left_pending,
    wait_quiescent,
};
use super::{Options, Setup};
use crate::app::{AppOptions, TestApp};
use crate::load::{Budget, peak_rss_mib, percentile, run_load};
use crate::results::Figures;

/// Phase 7 on the data of the (stopped) app `stopped`; returns a line saying how it went.
#[expect(clippy::too_many_arguments, reason = "one phase's inputs, each used once")]
pub(super) async fn with_worker(
    options: &Options,
    setup: &Setup,
    api_options: AppOptions,
    stopped: &TestApp,
    pool: &Pool,
    tokens: Vec<String>,
    hot_product_id: i64,
    baseline_tx_per_sec: f64,
    figures: &mut Figures,
) -> anyhow::Result<String> {
    let mut api_options = AppOptions {
        data_dir: Some(stopped.data_dir.clone()),
        database: Some(Arc::clone(&stopped.database)),
        ..api_options
    }
    .env("KASSA_WITH_WORKER", "true")
    // The same worker settings as the separate workers of the other phases.
    .env("KASSA_LEASE_SECS", "2")
    .env("KASSA_SANDBOX_FAILURE_RATE", "0")
    .env("KASSA_SANDBOX_LATENCY_MS", "0");
    api_options.env.extend(options.worker_env.iter().cloned());
    let mut app = catch("starting kassa-api --with-worker", TestApp::spawn_with(api_options)).await?;
    let target = Arc::new(Target::new(options.clients, app.base_url.clone(), tokens, hot_product_id)?);
    let first_order = scalar(pool, "select coalesce(max(id), 0) + 1 from orders").await?;

    let load_target = Arc::clone(&target);
    let placed = run_load(options.clients, Budget::Requests(options.e2e_orders), move |client, _| {
        let target = Arc::clone(&load_target);
        async move { target.place_order(client).await }
    })
    .await;
    let confirmed_at_stop =
        scalar(pool, &format!("select count(*) from orders where id >= {first_order} and status = 'confirmed'"))
            .await?;
    check_failures("--with-worker orders", &placed)?;
    wait_orders_left_pending(pool, first_order, "--with-worker order").await?;
    wait_quiescent(pool).await?;

    let orders = placed.outputs.len() as f64;
    let confirmations = Confirmations::read(pool, first_order, "--with-worker").await?;
    let latencies = &confirmations.latencies_ms;

    let section = "kassa-api --with-worker (no separate worker; the same client load)";
    let confirmed_per_sec = confirmations.rate_per_sec(orders);
    figures.record(section, "accepted → confirmed, --with-worker", "orders/s", confirmed_per_sec);
    figures.record(section, "accept rate meanwhile, --with-worker", "req/s", placed.rate_per_sec());
    figures.record(section, "orders confirmed when the load stopped", "orders", confirmed_at_stop as f64);
    figures.record(section, "share confirmed when the load stopped", "%", confirmed_at_stop as f64 * 100.0 / orders);
    figures.record(section, "accepted → confirmed p50, --with-worker", "ms", percentile(latencies, 0.50));
    figures.record(section, "accepted → confirmed p99, --with-worker", "ms", percentile(latencies, 0.99));
    figures.record(super::RATIOS, "end to end, --with-worker / baseline", "×", confirmed_per_sec / baseline_tx_per_sec);
    figures.record(
        "peak RSS (VmHWM, reset at the start of each phase)",
        "kassa-api --with-worker",
        "MiB",
        peak_rss_mib(app.process.pid())?,
    );
    let lost = lost_leases(&app.process, &format!("{}/metrics", app.base_url)).await;
    figures.record(LOST_LEASES, "kassa-api --with-worker", "leases", lost);
    stop(std::slice::from_mut(&mut app.process));
    Ok(format!(
        "  [{}] --with-worker: {} orders, {confirmed_at_stop} confirmed when the load stopped, {confirmed_per_sec:.0}/s",
        setup.name,
        placed.outputs.len()
    ))
}
