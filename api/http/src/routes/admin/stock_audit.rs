//! `GET /admin/stock-audit`: products whose units do not add up.

use axum::extract::State;
use kassa_common::db::now_ms;
use kassa_common::store::admin::stock_audit::{self, StockAudit};

use crate::auth::AdminUser;
use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// Checks, for every product (deleted ones included), that initial stock +
/// admin adjustments = current stock + units held by live orders, and lists
/// the products that break it. `ok` is true when none does. The same count
/// is exported as the `kassa_stock_audit_violations` gauge.
#[utoipa::path(get, path = "/admin/stock-audit", tag = "admin",
    security(("bearer_auth" = [])),
    responses(
        (status = 200, description = "The audit", body = StockAudit),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(admin_id = admin.0.user_id))]
pub(super) async fn stock_audit(
    State(state): State<AppState>,
    admin: AdminUser,
) -> Result<axum::Json<StockAudit>, ApiError> {
    // One read transaction: every figure comes from the same snapshot.
    let mut tx = state.db.pool().begin().await?;
    let audit = stock_audit::stock_audit(&mut tx, now_ms()).await?;
    tx.commit().await?;
    if !audit.ok {
        tracing::warn!(violations = audit.violations.len(), "stock audit found products that do not balance");
    }
    Ok(axum::Json(audit))
}
