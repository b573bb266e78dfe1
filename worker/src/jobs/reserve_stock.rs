//! `reserve_stock(order_id)`: takes every unit of a pending order from stock
//! in one transaction (all lines or none), records the reservation and pushes
//! `charge` in that same transaction — or cancels the order as
//! `out_of_stock`. A second run finds the reservation and only makes sure
//! `charge` exists.

use kassa_common::jobs::ReserveStock;
use kassa_common::queue::{JobError, Outcome};
use kassa_common::store::orders::{self, ReserveOutcome};

use super::store_error;
use crate::registry::{Job, JobContext};

/// Runs the reservation.
#[tracing::instrument(skip_all, fields(order_id = job.order_id, job_id = %ctx.job_id))]
pub async fn run(job: &ReserveStock, ctx: &JobContext) -> Result<Outcome, JobError> {
    let order_id = job.order_id;
    let outcome = ctx
        .db
        .write(move |tx| Box::pin(async move { orders::reserve_stock(tx, order_id).await.map_err(store_error) }))
        .await?;
    Ok(match outcome {
        ReserveOutcome::Reserved => Outcome::Done,
        ReserveOutcome::AlreadyReserved => Outcome::AlreadyDone,
        ReserveOutcome::OutOfStock => {
            tracing::info!("order cancelled: out of stock");
            metrics::counter!("kassa_orders_cancelled_total", "reason" => "out_of_stock").increment(1);
            Outcome::Done
        }
        ReserveOutcome::NotPending(status) => Outcome::Skipped(format!("order is {status}, not pending")),
        ReserveOutcome::Missing => Outcome::Skipped("order not found".into()),
    })
}

impl Job for ReserveStock {
    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        run(&self, &ctx).await
    }
}
