//! `GET /admin/dashboard`: how is business and what is the queue doing.

use axum::extract::State;
use kassa_common::db::now_ms;
use kassa_common::store::admin::dashboard::{self, Dashboard};

use crate::auth::AdminUser;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// Accounts, catalogue, low-stock products (threshold `KASSA_LOW_STOCK_THRESHOLD`),
/// orders by status, revenue (confirmed, shipped and delivered orders, in
/// minor units), today's orders and revenue (UTC), and the queue: per job
/// type, jobs `pending` (waiting for a first attempt), `retrying` (waiting
/// for a retry after a failed or abandoned attempt), `running` and `dead`,
/// the oldest due job's age, and jobs finished in the last minute.
#[utoipa::path(get, path = "/admin/dashboard", tag = "admin",
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "The dashboard", body = Dashboard),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(admin_id = admin.0.user_id))]
pub(super) async fn dashboard(
    State(state): State<AppState>,
    admin: AdminUser,
) -> Result<axum::Json<Dashboard>, ApiError> {
    let mut conn = state.db.pool().acquire().await?;
    let figures =
        dashboard::dashboard(&mut conn, state.settings.low_stock_threshold, &kassa_common::jobs::JOB_TYPES, now_ms())
            .await?;
    Ok(axum::Json(figures))
}
