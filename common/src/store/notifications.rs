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
