//! Notification records: one per (order, event), written once the e-mail
//! was handed to the mail server.

use sqlx::SqliteConnection;

use crate::db::now_ms;

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

/// Whether the e-mail about `event` of an order was already sent.
pub async fn was_sent(conn: &mut SqliteConnection, order_id: i64, event: &str) -> Result<bool, sqlx::Error> {
    let found: Option<i64> = sqlx::query_scalar("select 1 from notifications where order_id = ? and event = ?")
        .bind(order_id)
        .bind(event)
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

/// Whether an earlier e-mail job of the same order (pushed before `job_id`)
/// is still waiting or running. E-mails of one order go out in the order
/// their events happened: a later one waits for the earlier ones (a dead
/// earlier job does not hold the others back).
pub async fn earlier_unsent(conn: &mut SqliteConnection, order_id: i64, job_id: i64) -> Result<bool, sqlx::Error> {
    let waiting: Option<i64> = sqlx::query_scalar(
        "select 1 from order_jobs oj join jobs j on j.id = oj.job_id
         where oj.order_id = ? and oj.job_id < ? and j.job_type = 'notify' and j.status in ('pending', 'running')
         limit 1",
    )
    .bind(order_id)
    .bind(job_id)
    .fetch_optional(conn)
    .await?;
    Ok(waiting.is_some())
}

/// Records a sent e-mail; a second record of the same (order, event) is ignored.
pub async fn record_sent(
    conn: &mut SqliteConnection,
    order_id: i64,
    notification: &SentNotification,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "insert into notifications (order_id, event, recipient, message_id, subject, transport, sent_at)
         values (?, ?, ?, ?, ?, ?, ?) on conflict (order_id, event) do nothing",
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
pub async fn for_order(conn: &mut SqliteConnection, order_id: i64) -> Result<Vec<SentNotification>, sqlx::Error> {
    sqlx::query_as(
        "select event, recipient, message_id, subject, transport, sent_at from notifications
         where order_id = ? order by sent_at, event",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{DbArgs, Durability};
    use crate::jobs::{Notify, NotifyEvent};
    use crate::store::orders::{RequestedLine, create_order, push_order_job};

    #[tokio::test]
    async fn a_later_email_waits_for_an_earlier_unsent_one_of_the_same_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = DbArgs::in_dir(dir.path(), Durability::Normal).connect_and_migrate().await.expect("db");
        let mut conn = pool.acquire().await.expect("conn");
        sqlx::query("insert into users (username, email, password_hash, role, created_at) values ('ana','ana@example.com','x','customer',0)")
            .execute(&mut *conn)
            .await
            .expect("user");
        sqlx::query("insert into products (name, price_cents, currency, stock, initial_stock, category, created_at, updated_at) values ('Lamp', 100, 'USD', 5, 5, 'home', 0, 0)")
            .execute(&mut *conn)
            .await
            .expect("product");
        // Creating the order pushes the "received" e-mail.
        let order_id =
            create_order(&mut conn, 1, &[RequestedLine { product_id: 1, quantity: 1 }], "pm_card_visa", "user:1")
                .await
                .expect("order");
        let confirmed =
            push_order_job(&mut conn, &Notify { order_id, event: NotifyEvent::Confirmed }).await.expect("push");
        let confirmed_id = confirmed.job_id().0;
        assert!(earlier_unsent(&mut conn, order_id, confirmed_id).await.expect("query"));
        sqlx::query("update jobs set status = 'succeeded' where job_type = 'notify' and id < ?")
            .bind(confirmed_id)
            .execute(&mut *conn)
            .await
            .expect("finish");
        assert!(!earlier_unsent(&mut conn, order_id, confirmed_id).await.expect("query"));
    }
}
