//! Notification records: one per (order, event), written once the e-mail
//! was handed to the mail server.

use crate::db::{DbConn, now_ms};

/// A sent notification.
#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SentNotification {
    /// `received`, `confirmed`, `shipped`, `delivered` or `cancelled`.
    pub event: String,
    /// Where it went.
    pub recipient: String,
    /// Its stable `Message-ID`.
    pub message_id: String,
    /// Its subject.
    pub subject: String,
    /// `smtp` or `file`.
    pub transport: String,
    /// When the server accepted it.
    #[serde(with = "crate::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub sent_at: i64,
}

/// Where an order's e-mail about one event stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmailState {
    /// It was sent already: a rerun sends nothing.
    Sent,
    /// An earlier e-mail job of the same order (pushed before this one) is
    /// still waiting or running: e-mails of one order go out in the order
    /// their events happened (a dead earlier job does not hold this one back).
    WaitForEarlier,
    /// Ready to send.
    Ready,
}

/// Where the e-mail about `event` of an order stands, for the notify job
/// `job_id`, in one read.
pub async fn email_state(
    conn: &mut DbConn,
    order_id: i64,
    event: &str,
    job_id: i64,
) -> Result<EmailState, sqlx::Error> {
    let (sent, earlier): (i64, i64) = sqlx::query_as(
        "select (select count(*) from notifications where order_id = $1 and event = $2),
                (select count(*) from jobs
                 where order_id = $1 and id < $3 and job_type = 'notify' and status in ('pending', 'running'))",
    )
    .bind(order_id)
    .bind(event)
    .bind(job_id)
    .fetch_one(conn)
    .await?;
    Ok(if sent > 0 {
        EmailState::Sent
    } else if earlier > 0 {
        EmailState::WaitForEarlier
    } else {
        EmailState::Ready
    })
}

/// Records a sent e-mail; a second record of the same (order, event) is ignored.
pub async fn record_sent(
    conn: &mut DbConn,
    order_id: i64,
    notification: &SentNotification,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "insert into notifications (order_id, event, recipient, message_id, subject, transport, sent_at)
         values ($1, $2, $3, $4, $5, $6, $7) on conflict (order_id, event) do nothing",
    )
    .bind(order_id)
    .bind(&notification.event)
    .bind(&notification.recipient)
    .bind(&notification.message_id)
    .bind(&notification.subject)
    .bind(&notification.transport)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An order's sent notifications, oldest first.
pub async fn for_order(conn: &mut DbConn, order_id: i64) -> Result<Vec<SentNotification>, sqlx::Error> {
    sqlx::query_as(
        "select event, recipient, message_id, subject, transport, sent_at from notifications
         where order_id = $1 order by sent_at, event",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{Notify, NotifyEvent};
    use crate::store::orders::{NewOrder, RequestedLine, create_order, push_order_job};

    crate::on_both_backends! {
    async fn a_later_email_waits_for_an_earlier_unsent_one_of_the_same_order(scratch) {
        let mut conn = scratch.db.pool().acquire().await.expect("conn");
        sqlx::query("insert into users (username, email, password_hash, role, created_at) values ('ana','ana@example.com','x','customer',0)")
            .execute(&mut conn)
            .await
            .expect("user");
        sqlx::query("insert into products (name, price_cents, currency, stock, initial_stock, category, created_at, updated_at) values ('Lamp', 100, 'USD', 5, 5, 'home', 0, 0)")
            .execute(&mut conn)
            .await
            .expect("product");
        // Creating the order pushes the "received" e-mail.
        let lines = [RequestedLine { product_id: 1, quantity: 1 }];
        let order = NewOrder { user_id: 1, lines: &lines, payment_method: "pm_card_visa", actor: "user:1", expected_total_cents: None };
        let order_id = create_order(&mut conn, &order).await.expect("order").order.id;
        let confirmed =
            push_order_job(&mut conn, &Notify { order_id, event: NotifyEvent::Confirmed }).await.expect("push");
        let confirmed_id = confirmed.job_id().0;
        let state = async |conn: &mut DbConn| email_state(conn, order_id, "confirmed", confirmed_id).await.expect("query");
        assert_eq!(state(&mut conn).await, EmailState::WaitForEarlier);
        sqlx::query("update jobs set status = 'succeeded' where job_type = 'notify' and id < $1")
            .bind(confirmed_id)
            .execute(&mut conn)
            .await
            .expect("finish");
        assert_eq!(state(&mut conn).await, EmailState::Ready);
        let sent = SentNotification {
            event: "confirmed".into(),
            recipient: "ana@example.com".into(),
            message_id: "<m>".into(),
            subject: "s".into(),
            transport: "file".into(),
            sent_at: 0,
        };
        assert!(record_sent(&mut conn, order_id, &sent).await.expect("record"));
        assert!(!record_sent(&mut conn, order_id, &sent).await.expect("record"), "recorded once");
        assert_eq!(state(&mut conn).await, EmailState::Sent);
    }
    }
}
