//! Logs and metrics for the `kassa-worker` binary: a text or JSON tracing
//! subscriber, a Prometheus `/metrics` endpoint, and the sampler of the
//! gauges read from the database (queue age and retries by type, stock audit).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use kassa_common::db::Pool;
use kassa_common::queue::metrics;
use kassa_common::store::admin::samples as admin_samples;
use kassa_common::store::admin::{dashboard, stock_audit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global tracing subscriber (filter from `RUST_LOG`, default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Installs the Prometheus recorder with histogram buckets for the queue's
/// histograms and the help text of every queue metric.
pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(metrics::JOB_DURATION.to_owned()),
            &[0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0],
        )?
        .set_buckets_for_metric(
            Matcher::Full(metrics::JOB_START_DELAY.to_owned()),
            &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0, 300.0],
        )?
        .set_buckets_for_metric(
            Matcher::Full(kassa_common::db::GROUP_COMMIT_UNITS.to_owned()),
            &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
        )?
        .set_buckets_for_metric(
            Matcher::Full(metrics::CLAIM_BATCH_SIZE.to_owned()),
            &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
        )?
        .install_recorder()?;
    metrics::describe();
    kassa_common::db::describe_metrics();
    describe_job_metrics();
    Ok(handle)
}

/// Gauge: pending jobs waiting for a retry, by `job_type` (a subset of
/// `kassa_queue_depth{state="pending"}`).
pub const QUEUE_RETRYING: &str = "kassa_queue_retrying";

/// Registers the help text of the metrics the jobs and the database sampler
/// record (the queue's own are in `kassa_common::queue::metrics`), and
/// creates the job counters at zero so they are scraped before the first event.
/// `kassa-api --with-worker` calls it too.
pub fn describe_job_metrics() {
    use kassa_common::domain::order::CancelReason;
    ::metrics::describe_counter!(
        "kassa_orders_cancelled_total",
        "Orders cancelled by this worker process, by reason (out_of_stock, payment_declined, payment_failed, …)."
    );
    ::metrics::describe_counter!("kassa_payments_total", "Charges answered by the payment gateway, by outcome.");
    ::metrics::describe_counter!("kassa_refunds_total", "Captured payments refunded after a cancellation.");
    ::metrics::describe_counter!(
        "kassa_notifications_sent_total",
        "Order e-mails handed to SMTP or the outbox, by event."
    );
    ::metrics::describe_gauge!(
        QUEUE_RETRYING,
        "Pending jobs waiting for a retry after a failed or abandoned attempt, by job type, sampled from the database."
    );
    admin_samples::describe();
    for reason in [
        CancelReason::OutOfStock,
        CancelReason::PaymentDeclined,
        CancelReason::PaymentFailed,
        CancelReason::CustomerRequest,
        CancelReason::AdminRequest,
    ] {
        ::metrics::counter!("kassa_orders_cancelled_total", "reason" => reason.as_str()).increment(0);
    }
    for outcome in ["captured", "declined", "failed"] {
        ::metrics::counter!("kassa_payments_total", "outcome" => outcome).increment(0);
    }
    ::metrics::counter!("kassa_refunds_total").increment(0);
}

/// Samples, every `every` until aborted, the gauges that need more than the
/// queue store offers: the oldest due job's age and the jobs waiting for a
/// retry per job type, and the stock-audit violation count. Each is a few
/// indexed reads; the audit reads every live reservation, which stays cheap
/// for shops of ordinary size (see the README's "Operating Kassa").
pub async fn sample_database(pool: Pool, job_types: Vec<String>, every: Duration) {
    let job_types: Vec<&str> = job_types.iter().map(String::as_str).collect();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = sample_once(&pool, &job_types).await {
            tracing::warn!(%error, "failed to sample queue and stock gauges");
        }
    }
}

async fn sample_once(pool: &Pool, job_types: &[&str]) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let overview = dashboard::queue_overview(&mut conn, job_types, kassa_common::db::now_ms()).await?;
    let violations = stock_audit::violation_count(&mut conn).await?;
    drop(conn);
    for counts in overview.job_types {
        ::metrics::gauge!(metrics::OLDEST_PENDING_AGE, "job_type" => counts.job_type.clone())
            .set(counts.oldest_pending_age_seconds);
        ::metrics::gauge!(QUEUE_RETRYING, "job_type" => counts.job_type).set(counts.retrying as f64);
    }
    ::metrics::gauge!(admin_samples::STOCK_AUDIT_VIOLATIONS).set(violations as f64);
    Ok(())
}

/// Serves `GET /metrics` on `bind` (port 0 picks a free port) and logs
/// `metrics listening on ADDR`. Returns the bound address.
pub async fn serve_metrics(bind: SocketAddr, handle: PrometheusHandle) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|error| anyhow::anyhow!("failed to bind the metrics listener on {bind}: {error}"))?;
    let addr = listener.local_addr()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "metrics server failed");
        }
    });
    tracing::info!("metrics listening on {addr}");
    Ok(addr)
}
