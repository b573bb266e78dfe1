//! Accounts: creation and look-up, the state a request's token is checked
//! against (role, disabled, token generation, revoked tokens), and what
//! admins change. Password hashes are written and read here but never leave
//! through a type that is serialised.
//!
//! E-mail uniqueness is on `email_key`, the address's NFKC case-folded form
//! (see [`crate::domain::email_key`]); logins by e-mail match on it too.

use super::{StoreError, sql};
use crate::db::{Backend, Db, DbConn, is_unique_violation, now_ms};
use crate::domain::account::{Email, Role, Username};
use crate::domain::email_key::{email_key, key_of};

/// An account as the API shows it: never with its password hash.
#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    /// Identifier.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Where notifications go.
    pub email: String,
    /// What the account may do.
    pub role: Role,
    /// Registration time.
    #[serde(with = "crate::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// When an admin disabled the account (it cannot log in or use its tokens), if it is.
    #[serde(with = "crate::time::rfc3339_ms_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub disabled_at: Option<i64>,
}

const USER_COLUMNS: &str = "id, username, email, role, created_at, disabled_at";

/// An account with its password hash, for logging in.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Credentials {
    /// Identifier.
    pub id: i64,
    /// PHC-format Argon2id hash.
    pub password_hash: String,
    /// What the account may do.
    pub role: Role,
    /// The token generation to put in a new token.
    pub token_generation: i64,
}

fn conflict(error: sqlx::Error) -> StoreError {
    if is_unique_violation(&error) {
        // One answer for both, so registration does not reveal which accounts exist.
        StoreError::Conflict("username or e-mail already registered".into())
    } else {
        StoreError::Database(error)
    }
}

/// Creates an account. A taken username or e-mail is a [`StoreError::Conflict`].
pub async fn insert_user(
    conn: &mut DbConn,
    username: &Username,
    email: &Email,
    password_hash: &str,
    role: Role,
) -> Result<User, StoreError> {
    sqlx::query_as::<_, User>(sqlx::AssertSqlSafe(format!(
        "insert into users (username, email, email_key, password_hash, role, created_at)
         values ($1, $2, $3, $4, $5, $6)
         returning {USER_COLUMNS}"
    )))
    .bind(username.as_ref())
    .bind(email.as_ref())
    .bind(email_key(email))
    .bind(password_hash)
    .bind(role)
    .bind(now_ms())
    .fetch_one(conn)
    .await
    .map_err(conflict)
}

/// What creating the first admin with the bootstrap secret did.
#[derive(Debug)]
pub enum Bootstrap {
    /// The account is the shop's first admin.
    Created(User),
    /// An admin exists already: the secret no longer creates admins.
    AdminExists,
}

/// Creates an admin only while the shop has none (the bootstrap secret's
/// one use); two racing bootstraps take turns (see `lock_admin_changes`).
pub async fn insert_first_admin(
    conn: &mut DbConn,
    username: &Username,
    email: &Email,
    password_hash: &str,
) -> Result<Bootstrap, StoreError> {
    lock_admin_changes(conn).await?;
    if count_admins(conn).await? > 0 {
        return Ok(Bootstrap::AdminExists);
    }
    insert_user(conn, username, email, password_hash, Role::Admin).await.map(Bootstrap::Created)
}

/// Makes changes to who is an admin take turns on PostgreSQL (a
/// transaction-level advisory lock), so two concurrent changes cannot both
/// see "another admin remains"; SQLite's write lock already does.
async fn lock_admin_changes(conn: &mut DbConn) -> Result<(), sqlx::Error> {
    if Backend::of(conn) == Backend::Postgres {
        sqlx::query("select pg_advisory_xact_lock(72635310)").execute(&mut *conn).await?;
    }
    Ok(())
}

/// How many enabled admin accounts there are.
pub async fn count_admins(conn: &mut DbConn) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from users where role = 'admin' and disabled_at is null").fetch_one(conn).await
}

/// Finds the credentials of an enabled account for a login name, which may
/// be a username (case-insensitive) or an e-mail address (by its key).
pub async fn find_credentials(conn: &mut DbConn, login: &str) -> Result<Option<Credentials>, sqlx::Error> {
    let backend = Backend::of(conn);
    let sql = format!(
        "select id, password_hash, role, token_generation from users
         where ({} or email_key = $2) and disabled_at is null limit 1",
        sql::equals_ignoring_case(backend, "username", 1),
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(login.trim()).bind(key_of(login)).fetch_optional(conn).await
}

/// Finds an account by id.
pub async fn get_user(conn: &mut DbConn, user_id: i64) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("select {USER_COLUMNS} from users where id = $1")))
        .bind(user_id)
        .fetch_optional(conn)
        .await
}

/// Accounts, oldest first, and how many there are.
pub async fn list_users(conn: &mut DbConn, limit: i64, offset: i64) -> Result<(Vec<User>, i64), sqlx::Error> {
    let total: i64 = sqlx::query_scalar("select count(*) from users").fetch_one(&mut *conn).await?;
    let users =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("select {USER_COLUMNS} from users order by id limit $1 offset $2")))
            .bind(limit)
            .bind(offset)
            .fetch_all(conn)
            .await?;
    Ok((users, total))
}

/// What a request's token is checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountState {
    /// The account's role now (not the one in the token).
    pub role: Role,
    /// Whether an admin disabled it.
    pub disabled: bool,
    /// Tokens issued with a lower generation are revoked.
    pub token_generation: i64,
    /// Ids of tokens revoked one by one and not yet expired.
    pub revoked_tokens: Vec<String>,
}

/// The state of an account, `None` if it does not exist.
pub async fn account_state(conn: &mut DbConn, user_id: i64) -> Result<Option<AccountState>, sqlx::Error> {
    let row: Option<(Role, Option<i64>, i64)> =
        sqlx::query_as("select role, disabled_at, token_generation from users where id = $1")
            .bind(user_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((role, disabled_at, token_generation)) = row else { return Ok(None) };
    let revoked_tokens =
        sqlx::query_scalar("select token_id from revoked_tokens where user_id = $1 and expires_at > $2")
            .bind(user_id)
            .bind(now_ms())
            .fetch_all(conn)
            .await?;
    Ok(Some(AccountState { role, disabled: disabled_at.is_some(), token_generation, revoked_tokens }))
}

/// Revokes one token until it would have expired anyway (logout).
pub async fn revoke_token(
    conn: &mut DbConn,
    user_id: i64,
    token_id: &str,
    expires_at_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into revoked_tokens (token_id, user_id, expires_at) values ($1, $2, $3)
         on conflict (token_id) do nothing",
    )
    .bind(token_id)
    .bind(user_id)
    .bind(expires_at_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Revokes every token the account holds now (raises its token generation).
pub async fn revoke_all_tokens(conn: &mut DbConn, user_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("update users set token_generation = token_generation + 1 where id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes up to `limit` revocations of tokens that have expired.
pub async fn prune_revoked_tokens(conn: &mut DbConn, limit: i64) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "delete from revoked_tokens where token_id in
         (select token_id from revoked_tokens where expires_at <= $1 order by expires_at limit $2)",
    )
    .bind(now_ms())
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// What an admin changes about an account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccountChange {
    /// Disable (revoking every token) or enable it.
    pub disabled: Option<bool>,
    /// Give it this role.
    pub role: Option<Role>,
}

/// Why an account could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// No such account.
    #[error("user not found")]
    NotFound,
    /// The change would leave the shop without an enabled admin.
    #[error("the shop needs at least one enabled admin")]
    LastAdmin,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Applies an admin's change. Disabling raises the token generation, so
/// every token the account holds stops working at once; a change of role
/// takes effect on the account's next request (roles are read from here,
/// not from tokens). The last enabled admin cannot be disabled or demoted.
pub async fn change_account(conn: &mut DbConn, user_id: i64, change: AccountChange) -> Result<User, ChangeError> {
    lock_admin_changes(conn).await?;
    let current = get_user(&mut *conn, user_id).await?.ok_or(ChangeError::NotFound)?;
    let stays_admin =
        change.role.unwrap_or(current.role) == Role::Admin && !change.disabled.unwrap_or(current.disabled_at.is_some());
    if current.role == Role::Admin && current.disabled_at.is_none() && !stays_admin && count_admins(conn).await? <= 1 {
        return Err(ChangeError::LastAdmin);
    }
    let now = now_ms();
    let disabled_at = match change.disabled {
        Some(true) => Some(current.disabled_at.unwrap_or(now)),
        Some(false) => None,
        None => current.disabled_at,
    };
    let revoke = i64::from(change.disabled == Some(true) && current.disabled_at.is_none());
    let user = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update users set disabled_at = $1, role = $2, token_generation = token_generation + $3
         where id = $4 returning {USER_COLUMNS}"
    )))
    .bind(disabled_at)
    .bind(change.role.unwrap_or(current.role))
    .bind(revoke)
    .bind(user_id)
    .fetch_one(conn)
    .await?;
    Ok(user)
}

/// Fills `email_key` for accounts created before it existed, `batch` at a
/// time, calling `progress(done, total)` after each batch. Two old accounts
/// whose addresses share a key keep the older one's; the other is left
/// without a key (and logged) for an operator to resolve.
pub async fn backfill_email_keys(
    db: &Db,
    batch: i64,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<(), sqlx::Error> {
    let total: i64 =
        sqlx::query_scalar("select count(*) from users where email_key is null").fetch_one(db.pool()).await?;
    if total == 0 {
        return Ok(());
    }
    let total = u64::try_from(total).unwrap_or(0);
    let mut done = 0;
    let mut after_id = 0;
    loop {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("select id, email from users where email_key is null and id > $1 order by id limit $2")
                .bind(after_id)
                .bind(batch)
                .fetch_all(db.pool())
                .await?;
        let Some((last_id, _)) = rows.last() else { break };
        after_id = *last_id;
        let count = rows.len() as u64;
        let rows = std::sync::Arc::new(rows);
        db.write(move |tx| {
            let rows = rows.clone();
            Box::pin(async move {
                for (id, email) in rows.iter() {
                    let key = key_of(email);
                    let taken: Option<i64> = sqlx::query_scalar("select id from users where email_key = $1")
                        .bind(&key)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some(owner) = taken {
                        tracing::warn!(user_id = id, owner, "two accounts share an e-mail address; left without a key");
                        continue;
                    }
                    sqlx::query("update users set email_key = $1 where id = $2")
                        .bind(&key)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                Ok::<_, sqlx::Error>(())
            })
        })
        .await?;
        done += count;
        progress(done.min(total), total);
    }
    Ok(())
}
