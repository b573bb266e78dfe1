//! The business invariants every test and the chaos harness check against
//! the database after the work is done.

use kassa_common::db::Pool;

/// A broken invariant, in words.
pub type Violation = String;

/// Checks, for a quiescent database:
/// - stock is conserved per product: initial stock + adjustments = current
///   stock + units held by orders whose reservation was not released;
/// - successful charges in the gateway ledger = orders confirmed or later +
///   refunded payments, at most one charge per order;
/// - no order is left `pending` and no job `running`.
pub async fn check(pool: &Pool) -> Vec<Violation> {
    let mut violations = Vec::new();
    let stock: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "select p.id,
                p.initial_stock
                  + coalesce((select cast(sum(delta) as bigint) from stock_adjustments a where a.product_id = p.id), 0),
                p.stock,
                coalesce((select cast(sum(i.quantity) as bigint)
                          from order_items i join stock_reservations r on r.order_id = i.order_id
                          where i.product_id = p.id and r.released_at is null), 0)
         from products p",
    )
    .fetch_all(pool)
    .await
    .expect("stock query");
    for (product_id, supplied, on_hand, held) in stock {
        if supplied != on_hand + held || on_hand < 0 {
            violations.push(format!("product {product_id}: supplied {supplied} != on hand {on_hand} + held {held}"));
        }
    }
    let charges: i64 =
        sqlx::query_scalar("select count(*) from sandbox_ledger where kind = 'charge' and outcome = 'succeeded'")
            .fetch_one(pool)
            .await
            .expect("charges");
    let confirmed_or_later: i64 =
        sqlx::query_scalar("select count(*) from orders where status in ('confirmed', 'shipped', 'delivered')")
            .fetch_one(pool)
            .await
            .expect("orders");
    let refunded: i64 = sqlx::query_scalar("select count(*) from payments where status = 'refunded'")
        .fetch_one(pool)
        .await
        .expect("refunds");
    if charges != confirmed_or_later + refunded {
        violations
            .push(format!("charges {charges} != confirmed-or-later orders {confirmed_or_later} + refunded {refunded}"));
    }
    let double: i64 = sqlx::query_scalar(
        "select count(*) from (select order_id from sandbox_ledger where kind = 'charge' and outcome = 'succeeded'
                               group by order_id having count(*) > 1) as twice",
    )
    .fetch_one(pool)
    .await
    .expect("double charges");
    if double > 0 {
        violations.push(format!("{double} orders charged more than once"));
    }
    let unpaid_confirmed: i64 = sqlx::query_scalar(
        "select count(*) from orders o where o.status in ('confirmed', 'shipped', 'delivered')
           and not exists (select 1 from payments p where p.order_id = o.id and p.status = 'captured')",
    )
    .fetch_one(pool)
    .await
    .expect("unpaid");
    if unpaid_confirmed > 0 {
        violations.push(format!("{unpaid_confirmed} confirmed orders without a captured payment"));
    }
    let cancelled_holding: i64 = sqlx::query_scalar(
        "select count(*) from orders o join stock_reservations r on r.order_id = o.id
         where o.status = 'cancelled' and r.released_at is null",
    )
    .fetch_one(pool)
    .await
    .expect("held");
    if cancelled_holding > 0 {
        violations.push(format!("{cancelled_holding} cancelled orders still hold stock"));
    }
    violations
}

/// Whether every order reached a stable state and the queue has no job
/// waiting or running (dead jobs are reported by [`check`]'s callers).
pub async fn quiescent(pool: &Pool) -> bool {
    let busy: i64 = sqlx::query_scalar(
        "select (select count(*) from orders where status = 'pending')
              + (select count(*) from jobs where status in ('pending', 'running'))",
    )
    .fetch_one(pool)
    .await
    .unwrap_or(1);
    busy == 0
}
