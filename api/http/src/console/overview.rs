//! The overview: per job type and state the count and the oldest waiting
//! job's age (the part the page polls every 2 s), attempts per minute over
//! the last 15 minutes as a chart, the workers seen recently and the stock
//! audit's verdict.

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use kassa_common::db::now_ms;
use kassa_common::store::admin::console as console_store;
use kassa_common::store::admin::{dashboard, stock_audit};
use kassa_common::time::format_ms;
use serde::Serialize;

use super::session::ConsoleAdmin;
use super::{ConsoleError, chart, page, templates};
use crate::state::AppState;

/// Minutes the throughput chart covers.
pub const CHART_MINUTES: i64 = 15;
/// A worker is listed while it has been seen within this many milliseconds.
pub const WORKER_SEEN_WINDOW_MS: i64 = 5 * 60_000;

#[derive(Serialize)]
struct WorkerRow {
    worker_id: String,
    last_seen: String,
    seconds_ago: i64,
    jobs_running: i64,
}

/// The figures the live part of the page shows.
async fn live_values(state: &AppState) -> Result<minijinja::Value, ConsoleError> {
    let now = now_ms();
    let mut conn = state.db.pool().acquire().await?;
    let queue = dashboard::queue_overview(&mut conn, &kassa_common::jobs::JOB_TYPES, now).await?;
    let workers: Vec<WorkerRow> = console_store::workers_seen(&mut conn, now - WORKER_SEEN_WINDOW_MS)
        .await?
        .into_iter()
        .map(|w| WorkerRow {
            last_seen: format_ms(w.last_seen_ms),
            seconds_ago: (now - w.last_seen_ms).max(0) / 1000,
            worker_id: w.worker_id,
            jobs_running: w.jobs_running,
        })
        .collect();
    drop(conn);
    let mut tx = state.db.pool().begin().await?;
    let audit = stock_audit::stock_audit(&mut tx, now).await?;
    tx.commit().await?;
    Ok(minijinja::context! { queue, workers, audit, generated_at => format_ms(now) })
}

/// `GET /console/`: the overview page.
#[tracing::instrument(skip_all, fields(admin_id = admin.admin.0.user_id))]
pub async fn overview(State(state): State<AppState>, admin: ConsoleAdmin) -> Result<Response, ConsoleError> {
    let live = live_values(&state).await?;
    let mut conn = state.db.pool().acquire().await?;
    let minutes = console_store::throughput(&mut conn, now_ms(), CHART_MINUTES).await?;
    drop(conn);
    let attempts: i64 = minutes.iter().map(|m| m.succeeded + m.failed).sum();
    let failed: i64 = minutes.iter().map(|m| m.failed).sum();
    let failure_rate_percent = if attempts == 0 { 0.0 } else { 100.0 * failed as f64 / attempts as f64 };
    let values = minijinja::context! {
        chart => minijinja::Value::from_safe_string(chart::throughput_svg(&minutes)),
        attempts,
        failed,
        failure_rate => format!("{failure_rate_percent:.1}"),
        ..live
    };
    page("overview.html", &admin, values)
}

/// `GET /console/overview/live`: the live part alone, for the page's poll.
pub async fn live(State(state): State<AppState>, _admin: ConsoleAdmin) -> Result<Response, ConsoleError> {
    let html = templates::render("live.html", live_values(&state).await?)?;
    Ok(Html(html).into_response())
}
