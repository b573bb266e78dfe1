//! Payment records: one row per order. A row is written as `pending` before
//! the gateway is called and settled from its answer in the same transaction
//! as the order's next step, so a capture is recorded exactly once.

use crate::db::DbConn;

use crate::db::now_ms;

/// A payment row.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Payment {
    /// The order.
    pub order_id: i64,
    /// The provider's name.
    pub provider: String,
    /// `pending`, `captured`, `refunded`, `declined` or `failed`.
    pub status: String,
    /// The provider's charge reference.
    pub reference: Option<String>,
    /// Amount in minor units.
    pub amount_cents: i64,
    /// The provider's refund reference.
    pub refund_reference: Option<String>,
}

/// The payment of an order, if any.
pub async fn get_payment(conn: &mut DbConn, order_id: i64) -> Result<Option<Payment>, sqlx::Error> {
    sqlx::query_as(
        "select order_id, provider, status, reference, amount_cents, refund_reference from payments where order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await
}

/// A payment about to be attempted (status `pending`).
#[derive(Clone, Debug)]
pub struct NewPayment<'a> {
    /// The order.
    pub order_id: i64,
    /// The provider's name.
    pub provider: &'a str,
    /// Amount in minor units.
    pub amount_cents: i64,
    /// Currency.
    pub currency: &'a str,
}

/// Records that a charge is about to be sent (status `pending`), unless the
/// order already has a payment; returns whether it was recorded now. Written
/// before the gateway call, so a cancellation can tell that a charge may
/// exist whose answer was never recorded.
pub async fn record_intent(conn: &mut DbConn, payment: &NewPayment<'_>) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    let done = sqlx::query(
        "insert into payments (order_id, provider, status, amount_cents, currency, created_at, updated_at)
         values ($1, $2, 'pending', $3, $4, $5, $6) on conflict (order_id) do nothing",
    )
    .bind(payment.order_id)
    .bind(payment.provider)
    .bind(payment.amount_cents)
    .bind(payment.currency)
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How a pending payment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement<'a> {
    /// The provider captured the money.
    Captured {
        /// The provider's charge reference.
        reference: &'a str,
    },
    /// The provider declined.
    Declined {
        /// The provider's reason.
        error: &'a str,
    },
    /// Transient failures until attempts ran out.
    Failed {
        /// The last error.
        error: &'a str,
    },
}

/// Records how a pending payment ended; returns whether it changed now (a
/// second settlement of the same payment changes nothing).
pub async fn settle(conn: &mut DbConn, order_id: i64, settlement: Settlement<'_>) -> Result<bool, sqlx::Error> {
    let (status, reference, error) = match settlement {
        Settlement::Captured { reference } => ("captured", Some(reference), None),
        Settlement::Declined { error } => ("declined", None, Some(error)),
        Settlement::Failed { error } => ("failed", None, Some(error)),
    };
    let done = sqlx::query(
        "update payments set status = $1, reference = $2, error = $3, updated_at = $4 where order_id = $5 and status = 'pending'",
    )
    .bind(status)
    .bind(reference)
    .bind(error)
    .bind(now_ms())
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a captured payment refunded; returns whether it changed now.
pub async fn mark_refunded(conn: &mut DbConn, order_id: i64, refund_reference: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update payments set status = 'refunded', refund_reference = $1, updated_at = $2
         where order_id = $3 and status = 'captured'",
    )
    .bind(refund_reference)
    .bind(now_ms())
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
