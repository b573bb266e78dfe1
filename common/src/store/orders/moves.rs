//! Status moves: a compare-and-set on `orders.status` (safe under any
//! concurrency: only one of two racing moves finds the old status), its
//! history row, the stock a cancellation releases, and the customer's
//! e-mail — all in the caller's unit of work.

use super::push_order_job;
use super::stock::release_reservation;
use crate::db::{DbConn, now_ms};
use crate::domain::order::{CancelReason, OrderStatus};
use crate::jobs::{Notify, NotifyEvent};
use crate::store::StoreError;

/// A move to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move<'a> {
    /// The order.
    pub order_id: i64,
    /// The status it must be in.
    pub from: OrderStatus,
    /// The status to move it to.
    pub to: OrderStatus,
    /// Who: `system`, `user:ID` or `admin:ID`.
    pub actor: &'a str,
    /// For a cancellation, why (a code from the closed set).
    pub reason: Option<CancelReason>,
    /// Free text from whoever asked, kept apart from the code.
    pub note: Option<&'a str>,
}

/// What a status move did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransitionOutcome {
    /// The order moved; history written (and stock released for a cancel).
    Applied,
    /// The order is already in the target status: a repeat, nothing done.
    AlreadyApplied,
    /// The order is in another status than `from`: a stale move, nothing done.
    Stale(OrderStatus),
    /// The move is not in the transition table.
    NotAllowed,
    /// No such order.
    Missing,
}

/// Writes one history row.
#[expect(clippy::too_many_arguments, reason = "one column each; called from two places")]
pub(super) async fn insert_history(
    conn: &mut DbConn,
    order_id: i64,
    from: Option<OrderStatus>,
    to: OrderStatus,
    actor: &str,
    reason: Option<CancelReason>,
    note: Option<&str>,
    at_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into order_status_history (order_id, from_status, to_status, actor, reason, note, at)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(order_id)
    .bind(from)
    .bind(to)
    .bind(actor)
    .bind(reason.map(CancelReason::as_str))
    .bind(note)
    .bind(at_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves an order `from → to` if it is still in `from` (compare-and-set),
/// writing the history row and pushing the customer's notification; a
/// cancellation also records its reason code and note and releases reserved
/// stock — all in the caller's unit of work.
pub async fn apply_transition(conn: &mut DbConn, mv: &Move<'_>) -> Result<TransitionOutcome, StoreError> {
    if !mv.from.can_move_to(mv.to) {
        return Ok(TransitionOutcome::NotAllowed);
    }
    let cancelling = mv.to == OrderStatus::Cancelled;
    let reason = if cancelling { Some(mv.reason.unwrap_or(CancelReason::AdminRequest)) } else { None };
    let note = if cancelling { mv.note } else { None };
    let now = now_ms();
    let moved = sqlx::query(
        "update orders set status = $1, updated_at = $2,
                cancel_reason = coalesce($3, cancel_reason), cancel_note = coalesce($4, cancel_note)
         where id = $5 and status = $6",
    )
    .bind(mv.to)
    .bind(now)
    .bind(reason.map(CancelReason::as_str))
    .bind(note)
    .bind(mv.order_id)
    .bind(mv.from)
    .execute(&mut *conn)
    .await?;
    if moved.rows_affected() == 0 {
        let current: Option<OrderStatus> = sqlx::query_scalar("select status from orders where id = $1")
            .bind(mv.order_id)
            .fetch_optional(&mut *conn)
            .await?;
        return Ok(match current {
            None => TransitionOutcome::Missing,
            Some(status) if status == mv.to => TransitionOutcome::AlreadyApplied,
            Some(status) => TransitionOutcome::Stale(status),
        });
    }
    insert_history(conn, mv.order_id, Some(mv.from), mv.to, mv.actor, reason, mv.note, now).await?;
    if cancelling {
        release_reservation(&mut *conn, mv.order_id).await?;
    }
    push_order_job(conn, &Notify { order_id: mv.order_id, event: NotifyEvent::for_status(mv.to) }).await?;
    Ok(TransitionOutcome::Applied)
}
