//! `Idempotency-Key` records: the first response to a (user, key) pair,
//! written in the same unit of work as the effect it describes, and
//! replayed to retries of the same request until it expires.
//!
//! A request claims its key first, in its own transaction: a placeholder
//! row is inserted, so a concurrent request with the same key — in another
//! API process or on another host — waits on that row (PostgreSQL) or on
//! the write lock (SQLite) and then finds the committed first response.
//! Neither can create a second effect.

use crate::db::{DbConn, now_ms};

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

/// What claiming a key found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key is new (or its record expired): this request makes the effect.
    Fresh,
    /// An earlier request with this key committed this response.
    Stored(StoredResponse),
}

/// Claims a user's key for a request with `fingerprint`, inside the unit of
/// work that will make the effect; see the module docs.
pub async fn claim(
    conn: &mut DbConn,
    user_id: i64,
    key: &str,
    fingerprint: &str,
    ttl_ms: i64,
) -> Result<Claim, sqlx::Error> {
    let now = now_ms();
    let claimed: Option<i64> = sqlx::query_scalar(
        "insert into idempotency_keys
             (user_id, idempotency_key, fingerprint, status_code, response_body, location, created_at, expires_at)
         values ($1, $2, $3, 0, '', null, $4, $5)
         on conflict (user_id, idempotency_key) do update set
             fingerprint = excluded.fingerprint, status_code = 0, response_body = '', location = null,
             created_at = excluded.created_at, expires_at = excluded.expires_at
         where idempotency_keys.expires_at <= $4
         returning user_id",
    )
    .bind(user_id)
    .bind(key)
    .bind(fingerprint)
    .bind(now)
    .bind(now.saturating_add(ttl_ms))
    .fetch_optional(&mut *conn)
    .await?;
    if claimed.is_some() {
        return Ok(Claim::Fresh);
    }
    let stored: StoredResponse = sqlx::query_as(
        "select fingerprint, status_code, response_body, location from idempotency_keys
         where user_id = $1 and idempotency_key = $2",
    )
    .bind(user_id)
    .bind(key)
    .fetch_one(conn)
    .await?;
    Ok(Claim::Stored(stored))
}

/// Records the response for a key this unit of work claimed.
pub async fn complete(
    conn: &mut DbConn,
    user_id: i64,
    key: &str,
    response: &StoredResponse,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update idempotency_keys set status_code = $3, response_body = $4, location = $5
         where user_id = $1 and idempotency_key = $2",
    )
    .bind(user_id)
    .bind(key)
    .bind(response.status_code)
    .bind(&response.response_body)
    .bind(&response.location)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes up to `limit` expired records; returns how many.
pub async fn prune_expired(conn: &mut DbConn, limit: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "delete from idempotency_keys where (user_id, idempotency_key) in
         (select user_id, idempotency_key from idempotency_keys where expires_at <= $1 order by expires_at limit $2)",
    )
    .bind(now_ms())
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
