//! `charge(order_id)`: charges the order's payment method through the
//! configured gateway, with the order's idempotency key so a repeated call
//! never charges twice.
//!
//! Before calling, a `pending` payment row records that a charge may exist;
//! the answer settles it in one unit of work together with the next step:
//! - captured → the order moves pending → confirmed in that same unit
//!   (compare-and-set, history, "confirmed" e-mail); if it was cancelled
//!   meanwhile, the capture is refunded at once (charged and refunded);
//! - declined → release the stock, cancel as `payment_declined`;
//! - transient failure → retry with backoff; on the last attempt release the
//!   stock and cancel as `payment_failed`.

use kassa_common::db::DbConn;
use kassa_common::domain::order::{CancelReason, OrderStatus};
use kassa_common::jobs::Charge;
use kassa_common::queue::{JobError, Outcome, RetryPolicy};
use kassa_common::store::orders::{self, Move, OrderRow, TransitionOutcome};
use kassa_common::store::payments::{self, NewPayment, Settlement};

use super::{refund_if_captured, store_error};
use crate::payments::{ChargeRequest, GatewayError, charge_key};
use crate::registry::{Job, JobContext};

/// Where a charge stands before the gateway is called.
enum Standing {
    /// No such order.
    Missing,
    /// Captured by an earlier run; the order is in this status.
    Captured(OrderStatus),
    /// Declined or failed by an earlier run, or already refunded.
    Settled,
    /// Not pending and never charged: nothing to do.
    NotPending(OrderStatus),
    /// A charge is to be sent (its intent is recorded).
    Charge(OrderRow),
}

/// Reads the order and its payment and records the intent to charge.
async fn prepare(tx: &mut DbConn, order_id: i64, provider: &str) -> Result<Standing, JobError> {
    let Some((order, payment_status)) = orders::get_order_with_payment_status(tx, order_id).await? else {
        return Ok(Standing::Missing);
    };
    Ok(match payment_status.as_deref() {
        Some("captured") => Standing::Captured(order.status),
        Some("pending") => Standing::Charge(order),
        Some(_) => Standing::Settled,
        // Cancelled before any charge was sent: never charge.
        None if order.status != OrderStatus::Pending => Standing::NotPending(order.status),
        None => {
            let intent = NewPayment { order_id, provider, amount_cents: order.total_cents, currency: &order.currency };
            payments::record_intent(tx, &intent).await?;
            Standing::Charge(order)
        }
    })
}

/// The confirmation a capture earns: pending → confirmed by the system.
fn confirmation(order_id: i64) -> Move<'static> {
    Move { order_id, from: OrderStatus::Pending, to: OrderStatus::Confirmed, actor: "system", reason: None, note: None }
}

/// Confirms the order (if still pending) in a unit; returns its status before.
async fn confirm(ctx: &JobContext, order_id: i64, reference: Option<String>) -> Result<TransitionOutcome, JobError> {
    ctx.db
        .write(move |tx| {
            let reference = reference.clone();
            Box::pin(async move {
                if let Some(reference) = &reference {
                    payments::settle(tx, order_id, Settlement::Captured { reference }).await?;
                }
                orders::apply_transition(tx, &confirmation(order_id)).await.map_err(store_error)
            })
        })
        .await
}

/// Runs the charge.
#[tracing::instrument(skip_all, fields(order_id = job.order_id, job_id = %ctx.job_id, attempt = ctx.attempt))]
pub async fn run(job: &Charge, ctx: &JobContext) -> Result<Outcome, JobError> {
    let order_id = job.order_id;
    let gateway = ctx.services.gateway.clone();
    let provider = gateway.provider();
    let standing = ctx.db.write(move |tx| Box::pin(async move { prepare(tx, order_id, provider).await })).await?;
    let order = match standing {
        Standing::Missing => return Ok(Outcome::Skipped("order not found".into())),
        Standing::NotPending(status) => {
            return Ok(Outcome::Skipped(format!("order is {status}, nothing charged")));
        }
        Standing::Settled => return Ok(Outcome::AlreadyDone),
        // Settled by an earlier run: make sure its next step happened.
        Standing::Captured(status) => {
            match status {
                OrderStatus::Pending => {
                    confirm(ctx, order_id, None).await?;
                }
                OrderStatus::Cancelled => refund_if_captured(ctx, order_id).await?,
                OrderStatus::Confirmed | OrderStatus::Shipped | OrderStatus::Delivered => {}
            }
            return Ok(Outcome::AlreadyDone);
        }
        Standing::Charge(order) => order,
    };

    let request = ChargeRequest {
        order_id,
        amount_cents: order.total_cents,
        currency: order.currency.clone(),
        payment_method: order.payment_method.clone(),
        idempotency_key: charge_key(order_id),
    };
    match gateway.charge(&request).await {
        Ok(receipt) => {
            let moved = confirm(ctx, order_id, Some(receipt.reference)).await?;
            metrics::counter!("kassa_payments_total", "outcome" => "captured").increment(1);
            if moved == TransitionOutcome::Stale(OrderStatus::Cancelled) {
                tracing::info!("order was cancelled while it was being charged: refunding");
                refund_if_captured(ctx, order_id).await?;
            }
            Ok(Outcome::Done)
        }
        Err(GatewayError::Declined(reason)) => {
            fail(ctx, order_id, reason, Failure::Declined).await?;
            Ok(Outcome::Done)
        }
        Err(GatewayError::Transient(reason)) if ctx.is_last_attempt() => {
            tracing::warn!(%reason, "payment kept failing; cancelling the order");
            fail(ctx, order_id, reason, Failure::GaveUp).await?;
            Ok(Outcome::Done)
        }
        Err(GatewayError::Transient(reason)) => Err(JobError::transient(reason)),
    }
}

/// How a payment failed for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// The provider declined.
    Declined,
    /// Transient failures until the attempts ran out.
    GaveUp,
}

/// Records a failed payment and cancels the pending order, releasing its stock.
async fn fail(ctx: &JobContext, order_id: i64, error: String, failure: Failure) -> Result<(), JobError> {
    let reason = match failure {
        Failure::Declined => CancelReason::PaymentDeclined,
        Failure::GaveUp => CancelReason::PaymentFailed,
    };
    let moved = ctx
        .db
        .write(move |tx| {
            let error = error.clone();
            Box::pin(async move {
                let settlement = match failure {
                    Failure::Declined => Settlement::Declined { error: &error },
                    Failure::GaveUp => Settlement::Failed { error: &error },
                };
                payments::settle(tx, order_id, settlement).await?;
                let cancel = Move {
                    order_id,
                    from: OrderStatus::Pending,
                    to: OrderStatus::Cancelled,
                    actor: "system",
                    reason: Some(reason),
                    note: None,
                };
                orders::apply_transition(tx, &cancel).await.map_err(store_error)
            })
        })
        .await?;
    let outcome = if failure == Failure::Declined { "declined" } else { "failed" };
    metrics::counter!("kassa_payments_total", "outcome" => outcome).increment(1);
    if moved == TransitionOutcome::Applied {
        metrics::counter!("kassa_orders_cancelled_total", "reason" => reason.as_str()).increment(1);
    }
    Ok(())
}

impl Job for Charge {
    /// Payment providers recover within minutes: retry from 1 s up to 2 min, 10 attempts.
    fn retry_policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            base_delay: std::time::Duration::from_millis(500),
            max_delay: std::time::Duration::from_secs(120),
        }
    }

    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        run(&self, &ctx).await
    }
}
