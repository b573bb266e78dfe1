//! Jobs: a page of jobs filtered by type and state, one job with its
//! payload, attempts (with their fencing tokens) and operator actions, and
//! retry or discard of dead jobs, one or several at once. Actions go
//! through `routes::admin::jobs`, the functions behind
//! `POST /admin/jobs/{id}/retry|discard`, so they are recorded alike.

use std::collections::HashMap;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use kassa_common::store::admin::console as console_store;
use kassa_common::store::admin::jobs::{self as job_store, ConsoleState, JobListFilter};
use kassa_common::time::format_ms;
use serde::{Deserialize, Serialize};

use super::session::{CSRF_FIELD, ConsoleAdmin};
use super::{ConsoleError, DoneQuery, page};
use crate::routes::admin::jobs::{detail, discard_dead, retry_dead};
use crate::state::AppState;

/// Jobs per page.
pub const PAGE_SIZE: i64 = 50;
/// The console states, in the order the filter lists them.
const STATES: [&str; 6] = ["pending", "retrying", "running", "dead", "succeeded", "discarded"];

/// The list's filters, as the query string gives them.
#[derive(Debug, Default, Deserialize)]
pub struct JobsQuery {
    /// A job type, or empty for all.
    #[serde(default, rename = "type")]
    pub job_type: String,
    /// A console state, or empty for all.
    #[serde(default)]
    pub state: String,
    /// The page, from 1.
    #[serde(default)]
    pub page: Option<i64>,
    /// What was just done, to say so (`retried`).
    #[serde(default)]
    pub done: Option<String>,
}

fn parse_state(state: &str) -> Option<ConsoleState> {
    serde_json::from_value(serde_json::Value::String(state.trim().to_owned())).ok()
}

/// `GET /console/jobs`: a page of jobs, newest first.
#[tracing::instrument(skip_all, fields(admin_id = admin.admin.0.user_id))]
pub async fn list(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    query: Result<Query<JobsQuery>, QueryRejection>,
) -> Result<Response, ConsoleError> {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let page_number = query.page.unwrap_or(1).max(1);
    let job_type = Some(query.job_type.trim().to_owned()).filter(|t| !t.is_empty());
    let state_filter = parse_state(&query.state);
    let filter = JobListFilter {
        state: state_filter,
        job_type: job_type.clone(),
        limit: PAGE_SIZE,
        offset: (page_number - 1).saturating_mul(PAGE_SIZE),
    };
    let mut conn = state.db.pool().acquire().await?;
    let (jobs, total) = job_store::list_jobs(&mut conn, &filter).await?;
    let pages = (total + PAGE_SIZE - 1) / PAGE_SIZE;
    let values = minijinja::context! {
        jobs,
        total,
        page => page_number,
        pages,
        job_type => job_type.unwrap_or_default(),
        state => state_filter.map(|_| query.state.trim().to_owned()).unwrap_or_default(),
        job_types => kassa_common::jobs::JOB_TYPES,
        states => STATES,
        notice => query.done.as_deref().and_then(|done| done.strip_prefix("retried-")).and_then(|n| n.parse::<u32>().ok())
            .map(|n| format!("Re-queued {n} job(s).")),
    };
    page("jobs.html", &admin, values)
}

#[derive(Serialize)]
struct AttemptRow {
    attempt: i64,
    lease_token: i64,
    worker_id: String,
    started_at: String,
    duration_ms: i64,
    outcome: String,
    error: Option<String>,
}

#[derive(Serialize)]
struct ActionRow {
    action: String,
    actor: String,
    reason: Option<String>,
    at: String,
}

/// `GET /console/jobs/{id}`: one job with its history.
#[tracing::instrument(skip_all, fields(admin_id = admin.admin.0.user_id, job_id = id))]
pub async fn show(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    Path(id): Path<i64>,
    query: Result<Query<DoneQuery>, QueryRejection>,
) -> Result<Response, ConsoleError> {
    let job = match detail(&state, id).await {
        Ok(job) => job,
        Err(crate::error::ApiError::NotFound(message)) => return Err(ConsoleError::NotFound(message)),
        Err(other) => return Err(other.into()),
    };
    let mut conn = state.db.pool().acquire().await?;
    let attempts: Vec<AttemptRow> = console_store::fenced_attempts(&mut conn, id)
        .await?
        .into_iter()
        .map(|a| AttemptRow {
            attempt: a.attempt,
            lease_token: a.lease_token,
            worker_id: a.worker_id,
            started_at: format_ms(a.started_at),
            duration_ms: a.duration_ms,
            outcome: a.outcome,
            error: a.error,
        })
        .collect();
    let actions: Vec<ActionRow> = job
        .operator_actions
        .iter()
        .map(|a| ActionRow {
            action: a.action.clone(),
            actor: a.actor.clone(),
            reason: a.reason.clone(),
            at: format_ms(a.at),
        })
        .collect();
    let payload = serde_json::to_string_pretty(&job.job.payload).unwrap_or_default();
    let order_id = job.job.payload.get("order_id").and_then(serde_json::Value::as_i64);
    let values = minijinja::context! {
        job => &job.job,
        payload,
        order_id,
        attempts,
        actions,
        done => query.ok().and_then(|Query(q)| q.done),
    };
    page("job.html", &admin, values)
}

/// The fields of a posted form, none when the body is not a form.
fn fields(form: Result<Form<HashMap<String, String>>, FormRejection>) -> HashMap<String, String> {
    form.map(|Form(fields)| fields).unwrap_or_default()
}

/// `POST /console/jobs/{id}/retry`: re-queues a dead job (reason optional).
#[tracing::instrument(skip_all, fields(admin_id = admin.admin.0.user_id, job_id = id))]
pub async fn retry(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    Path(id): Path<i64>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Response, ConsoleError> {
    let fields = fields(form);
    admin.check_csrf(fields.get(CSRF_FIELD).map(String::as_str))?;
    retry_dead(&state, &admin.admin, id, fields.get("reason").cloned()).await?;
    Ok(Redirect::to(&format!("/console/jobs/{id}?done=retried")).into_response())
}

/// `POST /console/jobs/{id}/discard`: discards a dead job (reason required).
#[tracing::instrument(skip_all, fields(admin_id = admin.admin.0.user_id, job_id = id))]
pub async fn discard(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    Path(id): Path<i64>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Response, ConsoleError> {
    let fields = fields(form);
    admin.check_csrf(fields.get(CSRF_FIELD).map(String::as_str))?;
    discard_dead(&state, &admin.admin, id, fields.get("reason").cloned()).await?;
    Ok(Redirect::to(&format!("/console/jobs/{id}?done=discarded")).into_response())
}

/// `POST /console/jobs/retry`: re-queues every selected dead job (fields
/// `job_<id>`), each through the same audited retry with the one reason.
/// Jobs no longer dead are skipped; the list says how many were re-queued.
#[tracing::instrument(skip_all, fields(admin_id = admin.admin.0.user_id))]
pub async fn retry_selected(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Response, ConsoleError> {
    let fields = fields(form);
    admin.check_csrf(fields.get(CSRF_FIELD).map(String::as_str))?;
    let mut ids: Vec<i64> =
        fields.keys().filter_map(|name| name.strip_prefix("job_")).filter_map(|id| id.parse().ok()).collect();
    ids.sort_unstable();
    if ids.is_empty() {
        return Err(crate::error::ApiError::invalid("jobs", "select at least one dead job").into());
    }
    // Checked once up front, so a bad reason re-queues nothing.
    let reason = crate::routes::admin::jobs::check_reason(fields.get("reason").cloned(), false)?;
    let mut retried = 0;
    for id in &ids {
        match retry_dead(&state, &admin.admin, *id, reason.clone()).await {
            Ok(_) => retried += 1,
            Err(crate::error::ApiError::Conflict { .. } | crate::error::ApiError::NotFound(_)) => {}
            Err(other) => return Err(other.into()),
        }
    }
    tracing::info!(selected = ids.len(), retried, "dead jobs re-queued in bulk by an operator");
    Ok(Redirect::to(&format!("/console/jobs?state=dead&done=retried-{retried}")).into_response())
}
