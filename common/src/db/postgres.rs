//! PostgreSQL servers: parsing and showing their URLs (host, port and
//! database, never the password), and running a unit of work in its own
//! transaction, retried when PostgreSQL aborts it for a deadlock or a
//! serialization failure.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;
use sqlx::any::AnyConnectOptions;

use super::{DbError, Pool, WRITE_RETRIES, WriteError, WriteUnit};

/// A PostgreSQL URL that remembers its password without ever showing it.
#[derive(Clone)]
pub(super) struct ServerUrl {
    url: url::Url,
}

impl fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerUrl({self})")
    }
}

/// The URL with any password replaced, for messages.
pub(super) fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        // Unparseable: show only the scheme, which cannot hold a secret.
        Err(_) => format!("{}://…", url.split("://").next().unwrap_or("?")),
    }
}

impl ServerUrl {
    pub(super) fn parse(url: &str) -> Result<ServerUrl, DbError> {
        let parsed =
            url::Url::parse(url).map_err(|e| DbError::InvalidUrl { url: redact(url), reason: e.to_string() })?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(DbError::InvalidUrl { url: redact(url), reason: "the URL names no host".into() });
        }
        Ok(ServerUrl { url: parsed })
    }

    /// The URL as given, password included: for connecting, never for showing.
    pub(super) fn secret_url(&self) -> &str {
        self.url.as_str()
    }

    pub(super) fn any_options(&self) -> Result<AnyConnectOptions, DbError> {
        AnyConnectOptions::from_str(self.url.as_str())
            .map_err(|e| DbError::InvalidUrl { url: self.to_string(), reason: e.to_string() })
    }
}

impl fmt::Display for ServerUrl {
    /// `postgres://user@host:port/database`, without password or parameters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.url.host_str().unwrap_or("?");
        let port = self.url.port().unwrap_or(5432);
        let database = self.url.path().trim_start_matches('/');
        match self.url.username() {
            "" => write!(f, "postgres://{host}:{port}/{database}"),
            user => write!(f, "postgres://{user}@{host}:{port}/{database}"),
        }
    }
}

/// Tries a unit may take when PostgreSQL keeps aborting it.
const MAX_TRIES: u32 = 8;

/// Whether PostgreSQL aborted the transaction for a reason a retry fixes:
/// serialization failure (40001) or deadlock (40P01).
fn is_retryable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| matches!(code.as_ref(), "40001" | "40P01")),
        _ => false,
    }
}

/// Runs `unit` in its own transaction and commits it; a deadlock or
/// serialization failure rolls it back and runs it again after a short,
/// jittered pause.
pub(super) async fn write<T, E, F>(pool: &Pool, mut unit: F) -> Result<T, E>
where
    T: Send + 'static,
    E: WriteError,
    F: WriteUnit<T, E>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        let mut tx = pool.begin().await?;
        let outcome = match unit(&mut tx).await {
            Ok(value) => tx.commit().await.map(|()| value).map_err(E::from),
            Err(error) => {
                // Dropping the transaction rolls it back; say so explicitly
                // so the connection returns to the pool clean at once.
                let _ = tx.rollback().await;
                Err(error)
            }
        };
        match outcome {
            Err(error) if tries < MAX_TRIES && error.as_database_error().is_some_and(is_retryable) => {
                metrics::counter!(WRITE_RETRIES).increment(1);
                let pause_ms = rand::rng().random_range(1..=(2_u64 << tries.min(6)));
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_show_host_port_and_database_but_never_the_password() {
        let url = ServerUrl::parse("postgresql://kassa:s3cret@db.example:6432/shop?sslmode=require").expect("valid");
        assert_eq!(url.to_string(), "postgres://kassa@db.example:6432/shop");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(redact("postgres://kassa:s3cret@db/shop"), "postgres://kassa:***@db/shop");
        assert!(ServerUrl::parse("postgres:///shop").is_err(), "no host");
    }
}
