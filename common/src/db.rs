//! Database set-up shared by both binaries: where the SQLite file lives, how it
//! is opened (WAL, foreign keys, busy timeout, `synchronous`), the embedded
//! migrations, and write transactions that take the write lock up front.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

/// The migrations in `migrations/`, embedded in every binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// How durable a commit is before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// `synchronous=FULL`: an acknowledged write survives power loss.
    Full,
    /// `synchronous=NORMAL`: faster; in WAL mode the last commits before a
    /// power loss (not a process crash) may be rolled back.
    Normal,
}

/// Database settings every binary accepts.
#[derive(Clone, Debug, clap::Args)]
pub struct DbArgs {
    /// Directory for the SQLite file, the JWT key and the mail outbox; created if missing.
    #[arg(long, env = "KASSA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database URL, e.g. `sqlite:///abs/path/kassa.db` or `sqlite://rel/path.db`
    /// (created if missing). Default: `kassa.db` in the data directory.
    #[arg(long, env = "KASSA_DATABASE_URL")]
    pub database_url: Option<String>,

    /// SQLite `synchronous` setting: `full` survives power loss, `normal` is faster.
    #[arg(long, env = "KASSA_SQLITE_SYNCHRONOUS", value_enum, default_value = "full")]
    pub sqlite_synchronous: Durability,

    /// Maximum open database connections in this process.
    #[arg(long, env = "KASSA_DB_MAX_CONNECTIONS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub db_max_connections: u32,

    /// How long a statement waits for SQLite's write lock before the store retries.
    #[arg(long, env = "KASSA_DB_BUSY_TIMEOUT_MS", default_value_t = 5_000)]
    pub db_busy_timeout_ms: u64,
}

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL is not a SQLite URL we can open.
    #[error("invalid database URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A directory could not be created.
    #[error("failed to create directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Connecting failed.
    #[error("failed to open the database")]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("failed to apply migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

impl DbArgs {
    /// The default settings for a database file `kassa.db` in `data_dir`,
    /// for tools and tests that make their own databases.
    pub fn in_dir(data_dir: &Path, sqlite_synchronous: Durability) -> DbArgs {
        DbArgs {
            data_dir: data_dir.to_path_buf(),
            database_url: None,
            sqlite_synchronous,
            db_max_connections: 4,
            db_busy_timeout_ms: 5_000,
        }
    }

    /// The connect options these arguments describe, creating the data
    /// directory and the database file's parent directory when missing.
    pub fn connect_options(&self) -> Result<SqliteConnectOptions, DbError> {
        create_dir(&self.data_dir)?;
        let url = match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("kassa.db").display()),
        };
        if !url.starts_with("sqlite:") {
            return Err(DbError::InvalidUrl { url, reason: "only sqlite: URLs are supported".into() });
        }
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(|e| DbError::InvalidUrl { url: url.clone(), reason: e.to_string() })?;
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            create_dir(parent)?;
        }
        let synchronous = match self.sqlite_synchronous {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
        };
        Ok(options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .synchronous(synchronous)
            .busy_timeout(Duration::from_millis(self.db_busy_timeout_ms))
            .pragma("temp_store", "memory")
            // 4 MiB of page cache per connection: enough for the hot tables,
            // and eight connections stay far below the memory budget.
            .pragma("cache_size", "-4000"))
    }

    /// Opens a pool on the database and applies pending migrations.
    pub async fn connect_and_migrate(&self) -> Result<SqlitePool, DbError> {
        let pool = self.connect().await?;
        MIGRATOR.run(&pool).await.map_err(DbError::Migrate)?;
        Ok(pool)
    }

    /// Opens a pool on the database without migrating.
    pub async fn connect(&self) -> Result<SqlitePool, DbError> {
        SqlitePoolOptions::new()
            .max_connections(self.db_max_connections)
            .min_connections(1)
            .connect_with(self.connect_options()?)
            .await
            .map_err(DbError::Connect)
    }
}

fn create_dir(path: &Path) -> Result<(), DbError> {
    std::fs::create_dir_all(path).map_err(|source| DbError::CreateDir { path: path.to_path_buf(), source })
}

/// Starts a write transaction holding SQLite's write lock from its first
/// statement (`BEGIN IMMEDIATE`), so a read-then-write transaction cannot fail
/// half way with `SQLITE_BUSY` when another connection writes first.
/// A busy database is retried with backoff; only other errors are returned.
pub async fn begin_write(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    let mut delay = Duration::from_millis(1);
    loop {
        match pool.begin_with("BEGIN IMMEDIATE").await {
            Err(e) if is_busy(&e) => {
                metrics::counter!("kassa_sqlite_busy_retries_total").increment(1);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Whether an error is SQLite reporting a lock held by another connection
/// (`SQLITE_BUSY`, `SQLITE_LOCKED` and their extended codes), which is worth retrying.
pub fn is_busy(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Extended result codes keep the primary code in the low byte.
            code.parse::<i32>().is_ok_and(|code| matches!(code & 0xff, 5 | 6))
        }),
        _ => false,
    }
}

/// Whether an error is a uniqueness violation (SQLite extended code 2067 or 1555).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

/// Milliseconds since the Unix epoch, the unit every timestamp column uses.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path, url: Option<String>) -> DbArgs {
        DbArgs {
            data_dir: dir.to_path_buf(),
            database_url: url,
            sqlite_synchronous: Durability::Full,
            db_max_connections: 2,
            db_busy_timeout_ms: 1000,
        }
    }

    #[tokio::test]
    async fn default_database_lives_in_a_created_data_dir() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().join("nested/data");
        let pool = args(&data_dir, None).connect_and_migrate().await.expect("connect");
        let mode: String = sqlx::query_scalar("pragma journal_mode").fetch_one(&pool).await.expect("journal mode");
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("pragma foreign_keys").fetch_one(&pool).await.expect("fk");
        assert_eq!(fk, 1);
        assert!(data_dir.join("kassa.db").exists());
    }

    #[tokio::test]
    async fn relative_and_absolute_urls_create_the_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("sub/abs.db");
        let url = format!("sqlite://{}", file.display());
        args(tmp.path(), Some(url)).connect_and_migrate().await.expect("connect");
        assert!(file.exists());
    }

    #[test]
    fn a_non_sqlite_url_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = args(tmp.path(), Some("mysql://x".into())).connect_options().unwrap_err();
        assert!(matches!(err, DbError::InvalidUrl { .. }));
    }
}
