//! `/admin/*`: the operators' view — dashboard, reports, the job console and
//! the stock audit. Admin only.

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// The `/admin` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
