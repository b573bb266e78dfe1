//! The job console: list jobs by state and type, look at one with its
//! attempts and operator actions, re-queue or discard a dead one. Every
//! action is recorded with the admin (`admin:<id>`), the time and the reason.

use axum::body::Bytes;
use axum::extract::State;
use kassa_common::domain::text::is_bidi_control;
use kassa_common::queue::{DbJobStore, JobId, JobStore, QueueError};

use kassa_common::store::admin::jobs::{self, ConsoleJob, ConsoleState, JobDetail, JobListFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::actor;
use crate::auth::AdminUser;
use crate::error::{ApiError, Problem};
use crate::extract::{Path, Query};
use crate::state::AppState;

/// Longest reason accepted, in characters.
const MAX_REASON_CHARS: usize = 1000;

/// Job console filters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobParams {
    /// `pending` (waiting for a first attempt), `retrying` (waiting for a
    /// retry after a failed or abandoned attempt), `running`, `dead`,
    /// `succeeded` or `discarded`. Default: every state.
    pub state: Option<ConsoleState>,
    /// Only jobs of this type (e.g. `charge`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub job_type: Option<String>,
    /// Page size, default 50, capped at 500.
    pub limit: Option<i64>,
    /// Jobs to skip.
    pub offset: Option<i64>,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    /// Jobs on this page.
    pub items: Vec<ConsoleJob>,
    /// Jobs matching the filters in all.
    pub total: i64,
    /// Page size used.
    pub limit: i64,
    /// Offset used.
    pub offset: i64,
}

/// Why an operator acts.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ActionBody {
    /// Why: kept in the job's operator actions. Required to discard.
    pub reason: Option<String>,
}

/// Jobs with payload, attempts, last error, `run_at` and lease holder, newest first.
#[utoipa::path(get, path = "/admin/jobs", tag = "admin",
    security(("bearer_auth" = [])),
    params(JobParams),
    responses(
        (status = 200, description = "A page of jobs", body = JobList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(admin_id = admin.0.user_id))]
pub(super) async fn list_jobs(
    State(state): State<AppState>,
    admin: AdminUser,
    Query(params): Query<JobParams>,
) -> Result<axum::Json<JobList>, ApiError> {
    let limit = params.limit.unwrap_or(50);
    let offset = params.offset.unwrap_or(0);
    if limit < 1 {
        return Err(ApiError::invalid("limit", "must be at least 1"));
    }
    if offset < 0 {
        return Err(ApiError::invalid("offset", "must not be negative"));
    }
    let filter = JobListFilter {
        state: params.state,
        job_type: params.job_type.filter(|t| !t.trim().is_empty()),
        limit: limit.min(500),
        offset,
    };
    let mut conn = state.db.pool().acquire().await?;
    let (items, total) = jobs::list_jobs(&mut conn, &filter).await?;
    Ok(axum::Json(JobList { items, total, limit: filter.limit, offset }))
}

/// One job with its attempt history and the operator actions taken on it.
#[utoipa::path(get, path = "/admin/jobs/{id}", tag = "admin",
    security(("bearer_auth" = [])),
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = JobDetail),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job (or pruned after retention)", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(admin_id = admin.0.user_id, job_id = id))]
pub(super) async fn get_job(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(id): Path<i64>,
) -> Result<axum::Json<JobDetail>, ApiError> {
    detail(&state, id).await.map(axum::Json)
}

/// Re-queues a dead job: pending at once, with a fresh set of attempts. The
/// body (`{"reason": …}`) is optional. 409 if the job is not dead.
#[utoipa::path(post, path = "/admin/jobs/{id}/retry", tag = "admin",
    security(("bearer_auth" = [])),
    params(("id" = i64, Path, description = "Job id")),
    request_body(content = Option<ActionBody>, description = "Optional reason"),
    responses(
        (status = 200, description = "Re-queued; the job as it is now", body = JobDetail),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job is not dead", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid reason", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(admin_id = admin.0.user_id, job_id = id))]
pub(super) async fn retry_job(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<axum::Json<JobDetail>, ApiError> {
    let reason = parse_reason(&body, false)?;
    retry_dead(&state, &admin, id, reason).await.map(axum::Json)
}

/// Re-queues dead job `id` for `admin`, recording them and `reason`
/// (checked by [`check_reason`]): what `POST /admin/jobs/{id}/retry` and the
/// operator console's retry buttons do.
pub(crate) async fn retry_dead(
    state: &AppState,
    admin: &AdminUser,
    id: i64,
    reason: Option<String>,
) -> Result<JobDetail, ApiError> {
    let reason = check_reason(reason, false)?;
    let store = DbJobStore::new(state.db.clone());
    store.requeue_dead(JobId(id), &actor(admin), reason.as_deref()).await.map_err(queue_error)?;
    tracing::info!(job_id = id, reason = reason.as_deref().unwrap_or(""), "dead job re-queued by an operator");
    detail(state, id).await
}

/// Discards dead job `id` for `admin` with `reason` (required): what
/// `POST /admin/jobs/{id}/discard` and the console's discard button do.
pub(crate) async fn discard_dead(
    state: &AppState,
    admin: &AdminUser,
    id: i64,
    reason: Option<String>,
) -> Result<JobDetail, ApiError> {
    let reason = check_reason(reason, true)?;
    let store = DbJobStore::new(state.db.clone());
    store.discard_dead(JobId(id), &actor(admin), reason.as_deref()).await.map_err(queue_error)?;
    tracing::info!(job_id = id, reason = reason.as_deref().unwrap_or(""), "dead job discarded by an operator");
    detail(state, id).await
}

/// Marks a dead job resolved without running it again; retention prunes it
/// later. The body must give a reason: `{"reason": "refunded by hand"}`.
/// 409 if the job is not dead.
#[utoipa::path(post, path = "/admin/jobs/{id}/discard", tag = "admin",
    security(("bearer_auth" = [])),
    params(("id" = i64, Path, description = "Job id")),
    request_body = ActionBody,
    responses(
        (status = 200, description = "Discarded; the job as it is now", body = JobDetail),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job is not dead", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing or invalid reason", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(admin_id = admin.0.user_id, job_id = id))]
pub(super) async fn discard_job(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<axum::Json<JobDetail>, ApiError> {
    let reason = parse_reason(&body, true)?;
    discard_dead(&state, &admin, id, reason).await.map(axum::Json)
}

/// One job with its history, or 404.
pub(crate) async fn detail(state: &AppState, id: i64) -> Result<JobDetail, ApiError> {
    let mut conn = state.db.pool().acquire().await?;
    jobs::job_detail(&mut conn, id).await?.ok_or_else(|| ApiError::NotFound(format!("job {id} not found")))
}

/// The optional JSON body's reason, trimmed; empty bodies have none.
fn parse_reason(body: &[u8], required: bool) -> Result<Option<String>, ApiError> {
    let parsed: ActionBody = if body.iter().all(u8::is_ascii_whitespace) {
        ActionBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::invalid("body", &e.to_string()))?
    };
    check_reason(parsed.reason, required)
}

/// An operator's reason, trimmed (empty is none): required or not, at most
/// [`MAX_REASON_CHARS`], without bidi controls.
pub(crate) fn check_reason(reason: Option<String>, required: bool) -> Result<Option<String>, ApiError> {
    let reason = reason.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty());
    match &reason {
        None if required => Err(ApiError::invalid("reason", "is required: say why the job is discarded")),
        Some(r) if r.chars().count() > MAX_REASON_CHARS => {
            Err(ApiError::invalid("reason", &format!("must be at most {MAX_REASON_CHARS} characters")))
        }
        Some(r) if r.chars().any(is_bidi_control) => Err(ApiError::invalid(
            "reason",
            "must not contain Unicode bidirectional control characters: operators read it in the job console",
        )),
        _ => Ok(reason),
    }
}

fn queue_error(error: QueueError) -> ApiError {
    match error {
        QueueError::NotFound(job_id) => ApiError::NotFound(format!("job {job_id} not found")),
        QueueError::NotDead { job_id, state } => {
            let mut extra = serde_json::Map::new();
            extra.insert("state".into(), state.as_str().into());
            ApiError::Conflict { detail: format!("job {job_id} is {state}, not dead"), extra }
        }
        other => ApiError::Internal(other.into()),
    }
}
