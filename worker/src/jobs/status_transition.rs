//! `status_transition(order_id, from, to, actor, reason)`: a compare-and-set
//! on the order's status with its history row and the customer's
//! notification in the same transaction. A repeated or stale move changes
//! nothing. A cancellation wins over a move that happened since it was asked
//! (pending → confirmed) as long as cancelling is still allowed; it releases
//! the reserved stock once (same transaction) and refunds a captured payment
//! through the gateway with the order's refund key. A rerun after a crash
//! finds the order already cancelled and only finishes the refund.

use kassa_common::domain::order::OrderStatus;
use kassa_common::jobs::StatusTransition;
use kassa_common::queue::{JobError, Outcome};
use kassa_common::store::orders::{self, Move, TransitionOutcome};

use super::{refund_if_captured, store_error};
use crate::registry::{Job, JobContext};

/// Runs the move.
#[tracing::instrument(skip_all, fields(order_id = job.order_id, job_id = %ctx.job_id, from = %job.from, to = %job.to))]
pub async fn run(job: &StatusTransition, ctx: &JobContext) -> Result<Outcome, JobError> {
    let transition = job.clone();
    let moved = ctx
        .db
        .write(move |tx| {
            let job = transition.clone();
            Box::pin(async move {
                let (reason, note) = job.reason_and_note();
                let mut mv =
                    Move { order_id: job.order_id, from: job.from, to: job.to, actor: &job.actor, reason, note };
                let mut moved = orders::apply_transition(tx, &mv).await.map_err(store_error)?;
                if let TransitionOutcome::Stale(current) = moved
                    && job.to == OrderStatus::Cancelled
                    && current.can_move_to(OrderStatus::Cancelled)
                {
                    // The order moved on (e.g. got confirmed) after the cancel
                    // was asked: cancelling is still allowed, so the cancel wins.
                    mv.from = current;
                    moved = orders::apply_transition(tx, &mv).await.map_err(store_error)?;
                }
                Ok::<_, JobError>(moved)
            })
        })
        .await?;
    let outcome = match moved {
        TransitionOutcome::Applied => {
            tracing::info!("order moved");
            if job.to == OrderStatus::Cancelled {
                let (reason, _) = job.reason_and_note();
                let code = reason.map_or("admin_request", |reason| reason.as_str());
                metrics::counter!("kassa_orders_cancelled_total", "reason" => code).increment(1);
            }
            Outcome::Done
        }
        TransitionOutcome::AlreadyApplied => Outcome::AlreadyDone,
        TransitionOutcome::Stale(current) => {
            return Ok(Outcome::Skipped(format!("stale move: order is {current}, not {}", job.from)));
        }
        TransitionOutcome::NotAllowed => {
            return Err(JobError::permanent(format!("{} → {} is not an allowed move", job.from, job.to)));
        }
        TransitionOutcome::Missing => return Ok(Outcome::Skipped("order not found".into())),
    };
    if job.to == OrderStatus::Cancelled {
        refund_if_captured(ctx, job.order_id).await?;
    }
    Ok(outcome)
}

impl Job for StatusTransition {
    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        run(&self, &ctx).await
    }
}
