//! `charge(order_id)`: charges the order's payment method through the
//! configured gateway, with the order's idempotency key so a repeated call
//! never charges twice.
//!
//! Before calling, a `pending` payment row records that a charge may exist;
//! the answer settles it in the same transaction as the next step:
//! - captured → push `status_transition(pending → confirmed)`; if the order
//!   was cancelled meanwhile, refund at once (charged and refunded);
//! - declined → release the stock, cancel as `payment_declined`;
//! - transient failure → retry with backoff; on the last attempt release the
//!   stock and cancel as `payment_failed`.

use kassa_common::db::begin_write;
use kassa_common::domain::order::{CancelReason, OrderStatus};
use kassa_common::jobs::{Charge, StatusTransition};
use kassa_common::payments::{ChargeRequest, GatewayError, charge_key};
use kassa_common::queue::{JobError, Outcome, RetryPolicy};
use kassa_common::store::orders::{self, TransitionOutcome};
use kassa_common::store::payments::{self, NewPayment, Settlement};

use super::{refund_if_captured, store_error};
use crate::registry::{Job, JobContext};

/// Runs the charge.
#[tracing::instrument(skip_all, fields(order_id = job.order_id, job_id = %ctx.job_id, attempt = ctx.attempt))]
pub async fn run(job: &Charge, ctx: &JobContext) -> Result<Outcome, JobError> {
    let order_id = job.order_id;
    let gateway = ctx.services.gateway.as_ref();
    let mut tx = begin_write(&ctx.pool).await?;
    let Some(order) = orders::get_order_row(&mut tx, order_id).await? else {
        return Ok(Outcome::Skipped("order not found".into()));
    };
    let payment = payments::get_payment(&mut tx, order_id).await?;
    match payment.as_ref().map(|p| p.status.as_str()) {
        // Settled by an earlier run: make sure its next step happened.
        Some("captured") => {
            match order.status {
                OrderStatus::Pending => {
                    confirm(&mut tx, order_id).await?;
                    tx.commit().await?;
                }
                OrderStatus::Cancelled => {
                    drop(tx);
                    refund_if_captured(ctx, order_id).await?;
                }
                OrderStatus::Confirmed | OrderStatus::Shipped | OrderStatus::Delivered => {}
            }
            return Ok(Outcome::AlreadyDone);
        }
        Some("pending") => {}
        Some(_) => return Ok(Outcome::AlreadyDone),
        None if order.status != OrderStatus::Pending => {
            // Cancelled before any charge was sent: never charge.
            return Ok(Outcome::Skipped(format!("order is {}, nothing charged", order.status)));
        }
        None => {
            let intent = NewPayment {
                order_id,
                provider: gateway.provider(),
                amount_cents: order.total_cents,
                currency: &order.currency,
            };
            payments::record_intent(&mut tx, &intent).await?;
        }
    }
    tx.commit().await?;

    let request = ChargeRequest {
        order_id,
        amount_cents: order.total_cents,
        currency: order.currency.clone(),
        payment_method: order.payment_method.clone(),
        idempotency_key: charge_key(order_id),
    };
    match gateway.charge(&request).await {
        Ok(receipt) => {
            let mut tx = begin_write(&ctx.pool).await?;
            payments::settle(&mut tx, order_id, Settlement::Captured { reference: &receipt.reference }).await?;
            let status = orders::get_order_row(&mut tx, order_id).await?.map(|o| o.status);
            if status == Some(OrderStatus::Pending) {
                confirm(&mut tx, order_id).await?;
            }
            tx.commit().await?;
            metrics::counter!("kassa_payments_total", "outcome" => "captured").increment(1);
            if status == Some(OrderStatus::Cancelled) {
                tracing::info!("order was cancelled while it was being charged: refunding");
                refund_if_captured(ctx, order_id).await?;
            }
            Ok(Outcome::Done)
        }
        Err(GatewayError::Declined(reason)) => {
            fail(ctx, order_id, Settlement::Declined { error: &reason }, CancelReason::PaymentDeclined).await?;
            Ok(Outcome::Done)
        }
        Err(GatewayError::Transient(reason)) if ctx.is_last_attempt() => {
            tracing::warn!(%reason, "payment kept failing; cancelling the order");
            fail(ctx, order_id, Settlement::Failed { error: &reason }, CancelReason::PaymentFailed).await?;
            Ok(Outcome::Done)
        }
        Err(GatewayError::Transient(reason)) => Err(JobError::transient(reason)),
    }
}

/// Pushes the confirmation; the transition job does the compare-and-set.
async fn confirm(conn: &mut sqlx::SqliteConnection, order_id: i64) -> Result<(), JobError> {
    let transition = StatusTransition {
        order_id,
        from: OrderStatus::Pending,
        to: OrderStatus::Confirmed,
        actor: "system".into(),
        reason: None,
    };
    orders::push_order_job(conn, &transition).await.map_err(|e| store_error(e.into()))?;
    Ok(())
}

/// Records a failed payment and cancels the pending order, releasing its stock.
async fn fail(
    ctx: &JobContext,
    order_id: i64,
    settlement: Settlement<'_>,
    reason: CancelReason,
) -> Result<(), JobError> {
    let mut tx = begin_write(&ctx.pool).await?;
    payments::settle(&mut tx, order_id, settlement).await?;
    let moved = orders::apply_transition(
        &mut tx,
        order_id,
        OrderStatus::Pending,
        OrderStatus::Cancelled,
        "system",
        Some(reason.as_str()),
    )
    .await
    .map_err(store_error)?;
    tx.commit().await?;
    let outcome = if matches!(settlement, Settlement::Declined { .. }) { "declined" } else { "failed" };
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
