//! Stock reservations: taking all of an order's units or none, and giving
//! them back once. Race-free on both backends: on SQLite the unit holds the
//! write lock; on PostgreSQL an order's product rows are locked in id order
//! first (so two reservations never deadlock); every decrement is also
//! conditional on the stock it needs; and the reservation row is keyed by
//! the order so it is written once.

use super::moves::{Move, apply_transition};
use super::push_order_job;
use crate::db::{Backend, DbConn, now_ms};
use crate::domain::order::{CancelReason, OrderStatus};
use crate::jobs::Charge;
use crate::store::StoreError;

/// What `reserve_stock` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Every unit was taken from stock and the charge job pushed.
    Reserved,
    /// An earlier run already reserved; the charge job is ensured.
    AlreadyReserved,
    /// Some line was short: the order is now cancelled (`out_of_stock`), nothing taken.
    OutOfStock,
    /// The order is no longer pending (e.g. cancelled first); nothing done.
    NotPending(OrderStatus),
    /// No such order.
    Missing,
}

/// Reserves all of an order's units or none, records the reservation and
/// pushes `charge` — or cancels the order as out of stock. Run it in a unit
/// of work: the decrements, the record and the next job commit together.
pub async fn reserve_stock(conn: &mut DbConn, order_id: i64) -> Result<ReserveOutcome, StoreError> {
    // On PostgreSQL the order's row is locked until the reservation
    // commits: a cancellation racing it (a compare-and-set on this row)
    // then waits, and finds the reservation to release.
    let backend = Backend::of(conn);
    let lock_order = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => " for update of o",
    };
    let order: Option<(OrderStatus, Option<i64>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select o.status, r.reserved_at from orders o left join stock_reservations r on r.order_id = o.id
         where o.id = $1{lock_order}"
    )))
    .bind(order_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((status, reserved_at)) = order else {
        return Ok(ReserveOutcome::Missing);
    };
    if reserved_at.is_some() {
        if status == OrderStatus::Pending {
            push_order_job(conn, &Charge { order_id }).await?;
        }
        return Ok(ReserveOutcome::AlreadyReserved);
    }
    if status != OrderStatus::Pending {
        return Ok(ReserveOutcome::NotPending(status));
    }
    // The check below holds until the decrement: SQLite's writer holds the
    // write lock, and PostgreSQL locks the order's product rows first (in
    // id order, so two reservations never deadlock).
    let lock = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => " order by p.id for update of p",
    };
    let lines: Vec<(i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select i.quantity, p.stock from order_items i join products p on p.id = i.product_id
         where i.order_id = $1{lock}"
    )))
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?;
    if lines.iter().any(|(quantity, stock)| stock < quantity) {
        let out_of_stock = Move {
            order_id,
            from: OrderStatus::Pending,
            to: OrderStatus::Cancelled,
            actor: "system",
            reason: Some(CancelReason::OutOfStock),
            note: None,
        };
        apply_transition(conn, &out_of_stock).await?;
        return Ok(ReserveOutcome::OutOfStock);
    }
    // The condition is the last line of defence (`stock >= 0` is a table check too).
    let taken = sqlx::query(
        "update products set stock = products.stock - i.quantity
         from order_items i
         where i.order_id = $1 and i.product_id = products.id and products.stock >= i.quantity",
    )
    .bind(order_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if usize::try_from(taken).ok() != Some(lines.len()) {
        return Err(StoreError::Invariant(format!("order {order_id}: stock changed under the lock")));
    }
    sqlx::query("insert into stock_reservations (order_id, reserved_at) values ($1, $2)")
        .bind(order_id)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
    push_order_job(conn, &Charge { order_id }).await?;
    Ok(ReserveOutcome::Reserved)
}

/// Gives an order's reserved units back to stock, once. Returns whether
/// anything was released now.
pub async fn release_reservation(conn: &mut DbConn, order_id: i64) -> Result<bool, sqlx::Error> {
    let released =
        sqlx::query("update stock_reservations set released_at = $1 where order_id = $2 and released_at is null")
            .bind(now_ms())
            .bind(order_id)
            .execute(&mut *conn)
            .await?;
    if released.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "update products set stock = products.stock + i.quantity
         from order_items i
         where i.order_id = $1 and i.product_id = products.id",
    )
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(true)
}
