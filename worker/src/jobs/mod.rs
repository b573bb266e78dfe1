//! Every job type, one per file. Add a type by writing its payload struct
//! with `pub async fn run`, implementing [`crate::Job`] for it, and
//! registering it in [`register_all`].
//!
//! # Layout
//! - [`noop`]: does nothing; for benchmarks.
//! - [`probe`]: a diagnostic job that records each execution, and can sleep,
//!   hang or fail on demand; for the queue's tests.
//! - [`reserve_stock`], [`charge`], [`status_transition`]: the order pipeline.
//! - [`notify`]: e-mails to customers.

pub mod charge;
pub mod noop;
pub mod notify;
pub mod probe;
pub mod reserve_stock;
pub mod status_transition;

use kassa_common::jobs::{Charge, Notify, ReserveStock, StatusTransition};
use kassa_common::queue::JobError;
use kassa_common::store::{StoreError, orders, payments};

use crate::payments::{GatewayError, RefundRequest, refund_key};
use crate::registry::{JobContext, Registry};

pub use noop::Noop;
pub use probe::Probe;

/// Registers every job type this binary knows.
pub fn register_all(registry: &mut Registry) {
    registry
        .register::<Noop>()
        .register::<Probe>()
        .register::<ReserveStock>()
        .register::<Charge>()
        .register::<StatusTransition>()
        .register::<Notify>();
}

/// Store failures: the database (busy, unavailable) is worth a retry; a
/// broken invariant rolled back and is retried a bounded number of times;
/// a missing or conflicting row will not change by retrying.
pub(crate) fn store_error(error: StoreError) -> JobError {
    match error {
        StoreError::Database(e) => e.into(),
        StoreError::Queue(e) => JobError::transient(e),
        StoreError::Invariant(e) => JobError::transient(e),
        e @ (StoreError::NotFound(_) | StoreError::Conflict(_)) => JobError::permanent(e),
    }
}

/// Refunds an order's captured payment through the gateway (idempotency key
/// `order-N-refund`) and records it. Does nothing unless the payment is
/// `captured`; two concurrent callers get the same refund from the gateway.
pub(crate) async fn refund_if_captured(ctx: &JobContext, order_id: i64) -> Result<(), JobError> {
    let mut conn = ctx.db.pool().acquire().await?;
    let payment = payments::get_payment(&mut conn, order_id).await?;
    let order = orders::get_order_row(&mut conn, order_id).await?;
    drop(conn);
    let (Some(payment), Some(order)) = (payment, order) else { return Ok(()) };
    if payment.status != "captured" {
        return Ok(());
    }
    let request = RefundRequest {
        order_id,
        charge_reference: payment.reference.unwrap_or_default(),
        amount_cents: payment.amount_cents,
        currency: order.currency,
        idempotency_key: refund_key(order_id),
    };
    let receipt = ctx.services.gateway.refund(&request).await.map_err(|e| match e {
        GatewayError::Transient(reason) => JobError::transient(reason),
        GatewayError::Declined(reason) => JobError::permanent(format!("refund refused: {reason}")),
    })?;
    let reference = receipt.reference;
    let refunded = ctx
        .db
        .write(move |tx| {
            let reference = reference.clone();
            Box::pin(async move { payments::mark_refunded(tx, order_id, &reference).await })
        })
        .await?;
    if refunded {
        metrics::counter!("kassa_refunds_total").increment(1);
        tracing::info!(order_id, "payment refunded");
    }
    Ok(())
}
