//! `/admin/*`: the operators' view — dashboard, reports, the job console and
//! the stock audit. Admin only: every handler takes an [`AdminUser`], so a
//! customer gets 403 and a caller without a token 401.
//!
//! # Layout
//! - [`dashboard`]: `GET /admin/dashboard`.
//! - [`reports`]: `GET /admin/reports`, as JSON or CSV.
//! - [`jobs`]: `GET /admin/jobs`, `GET /admin/jobs/{id}`, `POST /admin/jobs/{id}/retry|discard`.
//! - [`stock_audit`]: `GET /admin/stock-audit`.
//! - [`users`]: `GET|POST /admin/users`, `PUT /admin/users/{id}`.
//!
//! [`AdminUser`]: crate::auth::AdminUser

pub mod dashboard;
pub mod jobs;
pub mod reports;
pub mod stock_audit;
pub mod users;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The `/admin` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(dashboard::dashboard))
        .routes(routes!(reports::reports))
        .routes(routes!(jobs::list_jobs))
        .routes(routes!(jobs::get_job))
        .routes(routes!(jobs::retry_job))
        .routes(routes!(jobs::discard_job))
        .routes(routes!(stock_audit::stock_audit))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(users::change_user))
}

/// The actor recorded for an admin's operator actions.
pub(crate) fn actor(admin: &crate::auth::AdminUser) -> String {
    format!("admin:{}", admin.0.user_id)
}
