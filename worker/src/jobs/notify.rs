//! `notify(order_id, event)`: e-mails the customer about an event of their
//! order. A notification row per (order, event) records the e-mail as sent,
//! so a rerun after it is recorded sends nothing. The `Message-ID` is stable
//! per (order, event): if a worker dies after the server accepted the
//! message but before the row is written, the resend carries the same id and
//! is recognisable as a duplicate — the honest limit of SMTP.
//!
//! E-mails of one order go out in the order of their events: a job waits
//! (retrying) while an earlier e-mail of the same order is unsent.
//!
//! A dead or slow mail server only delays e-mails: this job retries with
//! backoff (from 1 s, capped at 5 min, for more than a day) and never holds
//! up an order. A permanent refusal (5xx) makes the job dead; the order is
//! unaffected.

use std::time::Duration;

use kassa_common::jobs::Notify;
use kassa_common::queue::{JobError, Outcome, RetryPolicy};
use kassa_common::store::notifications::{self, EmailState, SentNotification};
use kassa_common::store::{orders, users};
use lettre::message::Mailbox;

use crate::mail::{Email, SendError};
use crate::registry::{Job, JobContext};

/// Sends the e-mail unless it was sent already.
#[tracing::instrument(skip_all, fields(order_id = job.order_id, event = job.event.as_str(), job_id = %ctx.job_id))]
pub async fn run(job: &Notify, ctx: &JobContext) -> Result<Outcome, JobError> {
    let event = job.event.as_str();
    let mut conn = ctx.db.pool().acquire().await?;
    match notifications::email_state(&mut conn, job.order_id, event, ctx.job_id.0).await? {
        EmailState::Sent => return Ok(Outcome::AlreadyDone),
        // Retried shortly: the customer reads "received" before "confirmed".
        EmailState::WaitForEarlier => {
            return Err(JobError::transient("an earlier e-mail of this order is not sent yet"));
        }
        EmailState::Ready => {}
    }
    let Some((order, payment_status)) = orders::get_order_with_payment_status(&mut conn, job.order_id).await? else {
        return Ok(Outcome::Skipped("order not found".into()));
    };
    let items = orders::get_order_items(&mut conn, job.order_id).await?;
    let Some(user) = users::get_user(&mut conn, order.user_id).await? else {
        return Ok(Outcome::Skipped("customer not found".into()));
    };
    drop(conn);
    let refunded = payment_status.as_deref() == Some("refunded");
    let mailer = &ctx.services.mailer;
    let to: Mailbox = user
        .email
        .parse()
        .map_err(|e| JobError::permanent(format!("the customer's address {:?} is unusable: {e}", user.email)))?;
    let content = mailer
        .templates
        .render(&order, &items, refunded, &user.username, job.event)
        .map_err(|e| JobError::permanent(format!("rendering the {event} e-mail failed: {e}")))?;
    let message_id = mailer.message_id(job.order_id, event);
    let record = SentNotification {
        event: event.to_owned(),
        recipient: user.email.clone(),
        message_id: message_id.clone(),
        subject: content.subject.clone(),
        transport: mailer.transport_name().to_owned(),
        sent_at: 0,
    };
    mailer.send(Email { to, content, message_id }).await.map_err(|e| match e {
        SendError::Transient(reason) => JobError::transient(reason),
        SendError::Permanent(reason) => JobError::permanent(reason),
    })?;
    let order_id = job.order_id;
    ctx.db
        .write(move |tx| {
            let record = record.clone();
            Box::pin(async move { notifications::record_sent(tx, order_id, &record).await })
        })
        .await?;
    metrics::counter!("kassa_notifications_sent_total", "event" => event).increment(1);
    Ok(Outcome::Done)
}

impl Job for Notify {
    /// From about 1 s, doubling to a 5 min cap: 300 attempts span more than a day.
    fn retry_policy() -> RetryPolicy {
        RetryPolicy { max_attempts: 300, base_delay: Duration::from_secs(1), max_delay: Duration::from_secs(300) }
    }

    async fn perform(self, ctx: JobContext) -> Result<Outcome, JobError> {
        run(&self, &ctx).await
    }
}
