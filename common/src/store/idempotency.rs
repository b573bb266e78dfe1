//! `Idempotency-Key` records: the first response to a (user, key) pair,
//! written in the same transaction as the effect it describes, and replayed
//! to retries of the same request until it expires.

use sqlx::SqliteConnection;

use crate::db::now_ms;

/// A stored first response.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredResponse {
    /// Method, path and canonical body of the first request.
    pub fingerprint: String,
    /// Its status code.
    pub status_code: i64,
    /// Its JSON body.
    pub response_body: String,
    /// Its `Location` header, if any.
    pub location: Option<String>,
}

/// The live (unexpired) record for a user's key.
pub async fn find(conn: &mut SqliteConnection, user_id: i64, key: &str) -> Result<Option<StoredResponse>, sqlx::Error> {
    sqlx::query_as(
        "select fingerprint, status_code, response_body, location from idempotency_keys
         where user_id = ? and idempotency_key = ? and expires_at > ?",
    )
    .bind(user_id)
    .bind(key)
    .bind(now_ms())
    .fetch_optional(conn)
    .await
}

/// Stores the first response for a user's key, replacing an expired record,
/// and prunes a few other expired records on the way.
pub async fn store(
    conn: &mut SqliteConnection,
    user_id: i64,
    key: &str,
    response: &StoredResponse,
    ttl_ms: i64,
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    sqlx::query(
        "delete from idempotency_keys where rowid in
         (select rowid from idempotency_keys where expires_at <= ? order by expires_at limit 50)",
    )
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "insert into idempotency_keys
             (user_id, idempotency_key, fingerprint, status_code, response_body, location, created_at, expires_at)
         values (?, ?, ?, ?, ?, ?, ?, ?)
         on conflict (user_id, idempotency_key) do update set
             fingerprint = excluded.fingerprint, status_code = excluded.status_code,
             response_body = excluded.response_body, location = excluded.location,
             created_at = excluded.created_at, expires_at = excluded.expires_at",
    )
    .bind(user_id)
    .bind(key)
    .bind(&response.fingerprint)
    .bind(response.status_code)
    .bind(&response.response_body)
    .bind(&response.location)
    .bind(now)
    .bind(now + ttl_ms)
    .execute(conn)
    .await?;
    Ok(())
}
