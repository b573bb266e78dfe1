//! Accounts: creation and look-up. Password hashes are written and read here
//! but never leave through a type that is serialised.

use sqlx::SqliteConnection;

use super::StoreError;
use crate::db::{is_unique_violation, now_ms};
use crate::domain::account::{Email, Role, Username};

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
}

/// An account with its password hash, for logging in.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Credentials {
    /// Identifier.
    pub id: i64,
    /// PHC-format Argon2id hash.
    pub password_hash: String,
    /// What the account may do.
    pub role: Role,
}

/// Creates an account. A taken username or e-mail is a [`StoreError::Conflict`].
pub async fn insert_user(
    conn: &mut SqliteConnection,
    username: &Username,
    email: &Email,
    password_hash: &str,
    role: Role,
) -> Result<User, StoreError> {
    let result = sqlx::query_as::<_, User>(
        "insert into users (username, email, password_hash, role, created_at)
         values (?, ?, ?, ?, ?)
         returning id, username, email, role, created_at",
    )
    .bind(username.as_ref())
    .bind(email.as_ref())
    .bind(password_hash)
    .bind(role)
    .bind(now_ms())
    .fetch_one(conn)
    .await;
    result.map_err(|e| {
        if is_unique_violation(&e) {
            let what = if e.to_string().contains("users.email") { "e-mail address" } else { "username" };
            StoreError::Conflict(format!("that {what} is already registered"))
        } else {
            StoreError::Database(e)
        }
    })
}

/// Finds the credentials for a login name, which may be a username or an e-mail address.
pub async fn find_credentials(conn: &mut SqliteConnection, login: &str) -> Result<Option<Credentials>, sqlx::Error> {
    sqlx::query_as("select id, password_hash, role from users where username = ?1 or email = ?1 limit 1")
        .bind(login.trim())
        .fetch_optional(conn)
        .await
}

/// Finds an account by id.
pub async fn get_user(conn: &mut SqliteConnection, user_id: i64) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as("select id, username, email, role, created_at from users where id = ?")
        .bind(user_id)
        .fetch_optional(conn)
        .await
}
