//! Phase 3, end to end: orders placed while N workers run, how fast they
//! are confirmed, where the CPU time goes, and the job attempts by type.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use kassa_common::db::Pool;

use super::processes::{
    Confirmations, Target, check_failures, cpu_ms, record_lost_leases, scalar, start_worker, stop_workers,
    wait_orders_left_pending, wait_quiescent,
};
use super::{Options, Setup};
use crate::app::TestApp;
use crate::load::{Budget, median, peak_rss_mib, percentile, reset_peak_rss, run_load};
use crate::results::Figures;

/// Phase 3 for one worker count; returns a line saying how it went.
#[expect(clippy::too_many_arguments, reason = "one phase's inputs, each used once")]
pub(super) async fn end_to_end(
    options: &Options,
    setup: &Setup,
    app: &Arc<TestApp>,
    pool: &Pool,
    target: &Arc<Target>,
    worker_count: usize,
    baseline_tx_per_sec: f64,
    figures: &mut Figures,
) -> anyhow::Result<String> {
    let sync = setup.sync;
    let name = setup.name;
    let mut workers = Vec::new();
    for index in 0..worker_count {
        workers.push(start_worker(app, format!("{name}-e2e{worker_count}-{index}"), sync, &options.worker_env).await?);
    }
    let first_order = scalar(pool, "select coalesce(max(id), 0) + 1 from orders").await?;
    let first_job = scalar(pool, "select coalesce(max(id), 0) + 1 from jobs").await?;
    let cpu_before: Vec<f64> = workers.iter().map(|w| cpu_ms(w.process.pid())).collect::<Result<_, _>>()?;
    let api_cpu_before = cpu_ms(app.process.pid())?;
    reset_peak_rss(app.process.pid())?;
    let bench_cpu_before = cpu_ms(std::process::id())?;
    let started = Instant::now();

    let load_target = Arc::clone(target);
    let placed = run_load(options.clients, Budget::Requests(options.e2e_orders), move |client, _| {
        let target = Arc::clone(&load_target);
        async move { target.place_order(client).await }
    })
    .await;
    check_failures("end-to-end orders", &placed)?;
    wait_orders_left_pending(pool, first_order, "end-to-end order").await?;
    let confirmed_at = started.elapsed();
    wait_quiescent(pool).await?;
    let settled_at = started.elapsed();

    let orders = placed.outputs.len() as f64;
    let not_confirmed =
        scalar(pool, &format!("select count(*) from orders where id >= {first_order} and status <> 'confirmed'"))
            .await?;
    if not_confirmed > 0 {
        bail!("{not_confirmed} end-to-end orders were not confirmed");
    }
    let confirmations = Confirmations::read(pool, first_order, "end-to-end").await?;
    let last_finished = scalar(pool, &format!("select max(finished_at) from jobs where id >= {first_job}")).await?;
    let workers_label = format!("{worker_count} worker{}", if worker_count == 1 { "" } else { "s" });
    let section = "end to end (orders placed by the clients while the workers run)";
    let confirmed_per_sec = confirmations.rate_per_sec(orders);
    figures.record(section, format!("accepted → confirmed, {workers_label}"), "orders/s", confirmed_per_sec);
    figures.record(
        super::RATIOS,
        format!("end to end, {workers_label} / baseline"),
        "×",
        confirmed_per_sec / baseline_tx_per_sec,
    );
    figures.record(
        section,
        format!("accepted → every job done (e-mails too), {workers_label}"),
        "orders/s",
        orders * 1000.0 / (last_finished - confirmations.first_created).max(1) as f64,
    );
    figures.record(section, format!("accept rate meanwhile, {workers_label}"), "req/s", placed.rate_per_sec());
    let latencies = &confirmations.latencies_ms;
    figures.record(section, format!("accepted → confirmed p50, {workers_label}"), "ms", percentile(latencies, 0.5));
    figures.record(section, format!("accepted → confirmed p99, {workers_label}"), "ms", percentile(latencies, 0.99));

    // Where the time goes: CPU per order of each process, over the phase.
    let section = "where the time goes (end to end)";
    let workers_cpu: f64 = workers
        .iter()
        .zip(&cpu_before)
        .map(|(w, before)| cpu_ms(w.process.pid()).map(|now| now - before))
        .sum::<Result<f64, _>>()?;
    let api_cpu = cpu_ms(app.process.pid())? - api_cpu_before;
    let bench_cpu = cpu_ms(std::process::id())? - bench_cpu_before;
    let wall_ms = settled_at.as_secs_f64() * 1000.0;
    figures.record(section, format!("kassa-api CPU per order, {workers_label}"), "ms", api_cpu / orders);
    figures.record(section, format!("kassa-worker CPU per order (all), {workers_label}"), "ms", workers_cpu / orders);
    figures.record(section, format!("load generator CPU per order, {workers_label}"), "ms", bench_cpu / orders);
    figures.record(
        section,
        format!(
            "CPU busy (all three, of {} cores), {workers_label}",
            std::thread::available_parallelism().map_or(0, usize::from)
        ),
        "%",
        (api_cpu + workers_cpu + bench_cpu) * 100.0
            / (wall_ms * std::thread::available_parallelism().map_or(1, usize::from) as f64),
    );
    let outcome = format!(
        "  [{name}] e2e {workers_label}: {} orders, confirmed after {confirmed_at:?}, settled after {settled_at:?}",
        placed.outputs.len()
    );
    job_breakdown(pool, first_job, orders, &workers_label, figures).await?;

    let peak_worker = workers.iter().map(|w| peak_rss_mib(w.process.pid())).collect::<Result<Vec<_>, _>>()?;
    let section = "peak RSS (VmHWM, reset at the start of each phase)";
    figures.record(section, format!("kassa-api, end to end, {workers_label}"), "MiB", peak_rss_mib(app.process.pid())?);
    figures.record(
        section,
        format!("largest kassa-worker, {workers_label}"),
        "MiB",
        peak_worker.into_iter().fold(0.0, f64::max),
    );
    record_lost_leases(figures, &format!("end to end, {workers_label}"), &workers).await;
    stop_workers(workers);
    Ok(outcome)
}

/// Attempts per order, median queue wait and run time, and share of the run
/// time of each job type, for the jobs from `first_job` on.
async fn job_breakdown(
    pool: &Pool,
    first_job: i64,
    orders: f64,
    workers_label: &str,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "select j.job_type, a.started_at - j.created_at, a.duration_ms
         from job_attempts a join jobs j on j.id = a.job_id
         where j.id >= $1",
    )
    .bind(first_job)
    .fetch_all(pool)
    .await
    .context("Failed to read the job attempts")?;
    let total_run_ms: i64 = rows.iter().map(|(_, _, run)| run).sum();
    let mut types: Vec<&str> = rows.iter().map(|(job_type, _, _)| job_type.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    let section = "job attempts by type (end to end)";
    for job_type in types {
        let of_type = rows.iter().filter(|(t, _, _)| t == job_type);
        let waits: Vec<f64> = of_type.clone().map(|(_, wait, _)| *wait as f64).collect();
        let runs: Vec<f64> = of_type.map(|(_, _, run)| *run as f64).collect();
        let run_ms: f64 = runs.iter().sum();
        figures.record(
            section,
            format!("{job_type}: attempts per order, {workers_label}"),
            "",
            runs.len() as f64 / orders,
        );
        figures.record(section, format!("{job_type}: median queue wait, {workers_label}"), "ms", median(&waits));
        figures.record(section, format!("{job_type}: median run time, {workers_label}"), "ms", median(&runs));
        figures.record(
            section,
            format!("{job_type}: share of run time, {workers_label}"),
            "%",
            run_ms * 100.0 / total_run_ms.max(1) as f64,
        );
    }
    Ok(())
}
