//! Cheap counts sampled into Prometheus gauges: orders by status and
//! cancelled orders by reason. Both read the `orders_status` index.

use crate::db::DbConn;

/// Orders per status (statuses with no orders are absent).
pub async fn orders_by_status(conn: &mut DbConn) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("select status, count(*) from orders group by status").fetch_all(conn).await
}

/// Cancelled orders per cancel reason (`unknown` when none was recorded).
pub async fn cancelled_by_reason(conn: &mut DbConn) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "select coalesce(cancel_reason, 'unknown'), count(*) from orders where status = 'cancelled' group by 1",
    )
    .fetch_all(conn)
    .await
}

/// Gauge: orders by `status`, sampled from the database.
pub const ORDERS: &str = "kassa_orders";
/// Gauge: cancelled orders by `reason`, sampled from the database. Cancelled
/// is a terminal status, so the value only grows; read it with `delta()` or
/// `increase()` over a window.
pub const ORDERS_CANCELLED: &str = "kassa_orders_cancelled";
/// Gauge: products whose stock does not balance (see `GET /admin/stock-audit`).
pub const STOCK_AUDIT_VIOLATIONS: &str = "kassa_stock_audit_violations";

/// Registers the help text of the gauges above with the installed recorder.
pub fn describe() {
    metrics::describe_gauge!(ORDERS, "Orders by status, sampled from the database.");
    metrics::describe_gauge!(
        ORDERS_CANCELLED,
        "Cancelled orders by cancel reason, sampled from the database (grows only; use delta() or increase())."
    );
    metrics::describe_gauge!(
        STOCK_AUDIT_VIOLATIONS,
        "Products whose initial stock plus adjustments differs from stock on hand plus units held by live orders."
    );
}

/// Samples every gauge above in one read transaction. Statuses and reasons
/// with no orders read 0 rather than keeping a stale value.
pub async fn sample_business_gauges(pool: &crate::db::Pool) -> Result<(), sqlx::Error> {
    use crate::domain::order::{CancelReason, OrderStatus};
    let mut tx = pool.begin().await?;
    let by_status = orders_by_status(&mut tx).await?;
    let by_reason = cancelled_by_reason(&mut tx).await?;
    let violations = super::stock_audit::violation_count(&mut tx).await?;
    tx.commit().await?;
    for status in OrderStatus::ALL {
        let count = by_status.iter().find(|(s, _)| s == status.as_str()).map_or(0, |(_, n)| *n);
        metrics::gauge!(ORDERS, "status" => status.as_str()).set(count as f64);
    }
    // Label values come from the closed set only; anything else (rows
    // changed behind Kassa's back) is counted as `other`.
    for reason in CancelReason::ALL {
        let count = by_reason.iter().find(|(r, _)| r == reason.as_str()).map_or(0, |(_, n)| *n);
        metrics::gauge!(ORDERS_CANCELLED, "reason" => reason.as_str()).set(count as f64);
    }
    let other: i64 = by_reason.iter().filter(|(reason, _)| CancelReason::parse(reason).is_none()).map(|(_, n)| n).sum();
    metrics::gauge!(ORDERS_CANCELLED, "reason" => "other").set(other as f64);
    metrics::gauge!(STOCK_AUDIT_VIOLATIONS).set(violations as f64);
    Ok(())
}
