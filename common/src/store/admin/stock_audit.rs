//! The stock audit: for every product, initial stock + admin adjustments must
//! equal current stock + units held by live orders (orders whose stock
//! reservation was not released). A product that breaks it lost or created
//! units outside the recorded paths.

use crate::db::DbConn;
use serde::Serialize;

use crate::time::format_ms;

/// Per-product supply and holdings, as the audit computes them. Grouped
/// aggregates joined once, instead of a correlated sum per product.
const AUDIT_SQL: &str = "
    with adjusted as (
        select product_id, cast(sum(delta) as bigint) as units from stock_adjustments group by product_id
    ), held as (
        select i.product_id, cast(sum(i.quantity) as bigint) as units
        from order_items i join stock_reservations r on r.order_id = i.order_id
        where r.released_at is null
        group by i.product_id
    )
    select p.id as product_id, p.name, p.sku, case when p.deleted_at is null then 0 else 1 end as deleted,
           p.initial_stock, coalesce(adjusted.units, 0) as adjustments, p.stock,
           coalesce(held.units, 0) as held_by_orders
    from products p
    left join adjusted on adjusted.product_id = p.id
    left join held on held.product_id = p.id
    where p.initial_stock + coalesce(adjusted.units, 0) <> p.stock + coalesce(held.units, 0) or p.stock < 0";

/// A product whose units do not add up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StockViolation {
    /// The product.
    pub product_id: i64,
    /// Its name.
    pub name: String,
    /// Its SKU, if any.
    pub sku: Option<String>,
    /// Whether it was deleted from the catalogue (it is audited all the same).
    pub deleted: bool,
    /// Units at creation.
    pub initial_stock: i64,
    /// Sum of recorded admin adjustments.
    pub adjustments: i64,
    /// Units on hand now.
    pub stock: i64,
    /// Units held by live orders (reserved, not released).
    pub held_by_orders: i64,
    /// `initial_stock + adjustments - stock - held_by_orders`: units missing
    /// (positive) or appeared from nowhere (negative).
    pub discrepancy: i64,
}

/// The audit's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StockAudit {
    /// When the audit ran (RFC 3339).
    pub checked_at: String,
    /// Products audited (deleted ones included).
    pub products_checked: i64,
    /// Whether every product balances.
    pub ok: bool,
    /// The products that do not.
    pub violations: Vec<StockViolation>,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    product_id: i64,
    name: String,
    sku: Option<String>,
    deleted: i64,
    initial_stock: i64,
    adjustments: i64,
    stock: i64,
    held_by_orders: i64,
}

/// Audits every product. Run it in one read transaction (or on a single
/// connection) so the figures come from one snapshot.
pub async fn stock_audit(conn: &mut DbConn, now_ms: i64) -> Result<StockAudit, sqlx::Error> {
    let products_checked: i64 = sqlx::query_scalar("select count(*) from products").fetch_one(&mut *conn).await?;
    let rows: Vec<AuditRow> = sqlx::query_as(AUDIT_SQL).fetch_all(&mut *conn).await?;
    let violations: Vec<StockViolation> = rows
        .into_iter()
        .map(|row| StockViolation {
            discrepancy: row.initial_stock + row.adjustments - row.stock - row.held_by_orders,
            product_id: row.product_id,
            name: row.name,
            sku: row.sku,
            deleted: row.deleted != 0,
            initial_stock: row.initial_stock,
            adjustments: row.adjustments,
            stock: row.stock,
            held_by_orders: row.held_by_orders,
        })
        .collect();
    Ok(StockAudit { checked_at: format_ms(now_ms), products_checked, ok: violations.is_empty(), violations })
}

/// How many products break the audit, for the `kassa_stock_audit_violations` gauge.
pub async fn violation_count(conn: &mut DbConn) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("select count(*) from ({AUDIT_SQL}) as violations")))
        .fetch_one(conn)
        .await
}
