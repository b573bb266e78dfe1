//! `GET /admin/reports`: sales over a date range, as JSON or CSV.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use kassa_common::db::now_ms;
use kassa_common::store::admin::reports::{self, GroupBy, PeriodFigures, ReportRange, SalesReport};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::AdminUser;
use crate::error::{ApiError, Problem};
use crate::extract::Query;
use crate::state::AppState;

/// Media type of the CSV form.
const TEXT_CSV: &str = "text/csv";

/// The answer's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// The full report as JSON (the default).
    Json,
    /// One CSV row per period.
    Csv,
}

/// Report parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportParams {
    /// First day (`YYYY-MM-DD`, UTC) or instant (RFC 3339), inclusive. Default: 29 days before `to`.
    pub from: Option<String>,
    /// Last day (`YYYY-MM-DD`, UTC, the whole day) or instant (RFC 3339), inclusive. Default: now.
    pub to: Option<String>,
    /// `day` (default), `week` (ISO, from Monday) or `month`.
    pub group_by: Option<GroupBy>,
    /// `json` (default) or `csv`; `Accept: text/csv` also selects CSV.
    pub format: Option<ReportFormat>,
}

/// Sales and orders per period, average order value, top products by units
/// and by revenue, cancellations by reason, and lead times (p50/p95) from
/// pending to confirmed and from confirmed to delivered — all for the orders
/// placed in the range. Ranges are at most five years; a bad date, `from`
/// after `to` or a longer range is 422. With `Accept: text/csv` or
/// `format=csv` the answer is CSV: a header and one row per period
/// (`period,start,end,orders,paid_orders,cancelled_orders,sales_cents,average_order_value_cents`).
#[utoipa::path(get, path = "/admin/reports", tag = "admin",
    security(("bearer_auth" = [])),
    params(ReportParams),
    responses(
        (status = 200, description = "The report, as JSON or as CSV (one row per period)",
         content((SalesReport = "application/json"), (String = "text/csv"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad dates, reversed or too long a range", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(admin_id = admin.0.user_id))]
pub(super) async fn reports(
    State(state): State<AppState>,
    admin: AdminUser,
    headers: HeaderMap,
    Query(params): Query<ReportParams>,
) -> Result<Response, ApiError> {
    let range = ReportRange::parse(params.from.as_deref(), params.to.as_deref(), params.group_by, now_ms())?;
    let mut tx = state.db.pool().begin().await?;
    let report = reports::sales_report(&mut tx, &range).await?;
    tx.commit().await?;
    let wants_csv = match params.format {
        Some(format) => format == ReportFormat::Csv,
        None => headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|value| value.split(',').any(|item| item.trim().starts_with(TEXT_CSV))),
    };
    if !wants_csv {
        return Ok(axum::Json(report).into_response());
    }
    let mut response = to_csv(&report).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    response
        .headers_mut()
        .insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"kassa-report.csv\""));
    Ok(response)
}

/// The per-period table as RFC 4180 CSV. Every field is a number, a date
/// label or an RFC 3339 timestamp, none of which needs quoting.
fn to_csv(report: &SalesReport) -> String {
    let mut csv =
        String::from("period,start,end,orders,paid_orders,cancelled_orders,sales_cents,average_order_value_cents\r\n");
    for row in &report.periods {
        push_row(&mut csv, row);
    }
    csv
}

fn push_row(csv: &mut String, row: &PeriodFigures) {
    // Writing to a String cannot fail.
    let _ = write!(
        csv,
        "{},{},{},{},{},{},{},{}\r\n",
        row.period,
        row.start,
        row.end,
        row.orders,
        row.paid_orders,
        row.cancelled_orders,
        row.sales_cents,
        row.average_order_value_cents
    );
}
