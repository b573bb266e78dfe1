//! The database seam. Kassa runs on an embedded SQLite file (the
//! zero-configuration default) or on a PostgreSQL server (for APIs and
//! workers on several hosts); everything above this module is written once,
//! against [`DbConn`] (sqlx's `AnyConnection`), in SQL both dialects accept.
//! What differs — locking, search, a few functions — is chosen with
//! [`Backend::of`] at the few places that need it.
//!
//! Code touches the database in two ways:
//! - reads take a connection from [`Db::pool`] (or run a query on it);
//! - writes are units of work handed to [`Db::write`]. On SQLite, a single
//!   writer per process commits the units of many callers in one
//!   transaction, each in its own savepoint (group commit): one fsync and no
//!   lock waits for many requests, and one unit's failure rolls back only
//!   that unit. On PostgreSQL each unit is its own transaction, retried on
//!   deadlock or serialization failure.
//!
//! On SQLite, statements run on the calling thread (`sqlite_conn`), not
//! on a connection thread as with sqlx's driver; on PostgreSQL, sqlx's
//! connections carry them.
//!
//! # Layout
//! - this file: settings, the [`Db`] handle, errors, small helpers.
//! - `conn`: [`DbConn`], [`Pool`] and [`Tx`], either backend behind sqlx's query API.
//! - `sqlite_conn`: SQLite connections that run statements inline.
//! - `sqlite`: the file, its permissions and pragmas.
//! - `postgres`: server URLs and how they are shown.
//! - `writer`: group commit.
//! - `checkpoint`: WAL checkpoints off the writer's path.
//! - `migrate`: the per-backend migrations and applying them with progress.
//! - `types`: text enums as database values.
//! - [`scratch`]: fresh databases on either backend for tests and benchmarks.

mod checkpoint;
mod conn;
mod migrate;
mod postgres;
mod process_lock;
pub mod scratch;
mod sqlite;
mod sqlite_conn;
pub mod types;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};

pub use conn::{DbConn, Pool, Tx};
pub use migrate::{MigrationProgress, MigrationStep, POSTGRES_MIGRATOR, SQLITE_MIGRATOR, apply_migrations};
pub use writer::WriterStats;

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

    /// Database URL: `sqlite:///abs/path/kassa.db` or `sqlite://rel/path.db` (created if
    /// missing), or `postgres://user:password@host:port/database` (also `postgresql://`).
    /// Default: `kassa.db` in the data directory.
    #[arg(long, env = "KASSA_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// SQLite `synchronous` setting: `full` survives power loss, `normal` is faster.
    #[arg(long, env = "KASSA_SQLITE_SYNCHRONOUS", value_enum, default_value = "full")]
    pub sqlite_synchronous: Durability,

    /// Maximum open database connections in this process (readers; SQLite adds one writer).
    #[arg(long, env = "KASSA_DB_MAX_CONNECTIONS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub db_max_connections: u32,

    /// How long a statement waits for SQLite's write lock before the store retries.
    #[arg(long, env = "KASSA_DB_BUSY_TIMEOUT_MS", default_value_t = 5_000)]
    pub db_busy_timeout_ms: u64,
}

/// Which database a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file, one writer at a time.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The backend a connection belongs to.
    pub fn of(conn: &DbConn) -> Backend {
        conn.backend()
    }

    /// `sqlite` or `postgres`, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL is not one we can open.
    #[error("invalid database URL {url}: {reason}")]
    InvalidUrl {
        /// The URL as given, password removed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A directory or the database file could not be created.
    #[error("failed to create {path}")]
    CreateFile {
        /// The directory or file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Connecting failed.
    #[error("failed to open the database {target}")]
    Connect {
        /// What we tried to reach: a file, or a server's host, port and database (never a password).
        target: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("failed to apply migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// Where a database lives, parsed from the settings.
#[derive(Clone, Debug)]
enum Location {
    Sqlite(PathBuf),
    Postgres(postgres::ServerUrl),
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

    /// The backend these settings select.
    pub fn backend(&self) -> Result<Backend, DbError> {
        Ok(match self.location()? {
            Location::Sqlite(_) => Backend::Sqlite,
            Location::Postgres(_) => Backend::Postgres,
        })
    }

    fn location(&self) -> Result<Location, DbError> {
        let Some(url) = self.database_url.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(Location::Sqlite(self.data_dir.join("kassa.db")));
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return postgres::ServerUrl::parse(url).map(Location::Postgres);
        }
        if url.starts_with("sqlite:") {
            return sqlite::file_of(url).map(Location::Sqlite);
        }
        Err(DbError::InvalidUrl {
            url: postgres::redact(url),
            reason: "expected sqlite://…, postgres://… or postgresql://…".into(),
        })
    }

    /// Opens the database and applies pending migrations.
    pub async fn open(&self) -> Result<Db, DbError> {
        let db = self.connect().await?;
        db.migrate().await?;
        Ok(db)
    }

    /// Opens the database without migrating (creating the SQLite file and
    /// its directories when missing).
    pub async fn connect(&self) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        std::fs::create_dir_all(&self.data_dir)
            .map_err(|source| DbError::CreateFile { path: self.data_dir.clone(), source })?;
        let location = self.location()?;
        let pragmas = sqlite::Pragmas::new(self.sqlite_synchronous, self.db_busy_timeout_ms);
        let inner = match &location {
            Location::Sqlite(file) => {
                sqlite::create_file(file)?;
                let target = file.display().to_string();
                let connect = |source| DbError::Connect { target: target.clone(), source };
                let pool = Pool::sqlite(file, pragmas.reader(), self.db_max_connections).map_err(connect)?;
                let lock = process_lock::ProcessLock::open(file)
                    .map_err(|source| DbError::CreateFile { path: file.clone(), source })?;
                let checkpointer = checkpoint::Checkpointer::start(file.clone(), pragmas.checkpointer())
                    .map_err(|source| DbError::CreateFile { path: file.clone(), source })?;
                Inner {
                    pool,
                    backend: Backend::Sqlite,
                    migrations: sqlite::any_options(file)?,
                    target,
                    pragmas,
                    server_url: None,
                    writer: Some(writer::Writer::start(file.clone(), pragmas.writer(), lock, checkpointer)),
                }
            }
            Location::Postgres(server) => {
                let options = server.any_options()?;
                let pool = AnyPoolOptions::new()
                    .max_connections(self.db_max_connections)
                    .min_connections(1)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options.clone())
                    .await
                    .map_err(|source| DbError::Connect { target: server.to_string(), source })?;
                Inner {
                    pool: Pool::postgres(pool),
                    backend: Backend::Postgres,
                    migrations: options,
                    target: server.to_string(),
                    pragmas,
                    server_url: Some(server.secret_url().to_owned()),
                    writer: None,
                }
            }
        };
        Ok(Db { inner: Arc::new(inner) })
    }
}

struct Inner {
    pool: Pool,
    backend: Backend,
    /// Where migrations connect: sqlx's own driver, for its migrator.
    migrations: AnyConnectOptions,
    /// The pragmas of SQLite connections (the migrations' connection too).
    pragmas: sqlite::Pragmas,
    target: String,
    /// The PostgreSQL URL with its password, for listener connections.
    server_url: Option<String>,
    writer: Option<writer::Writer>,
}

/// An open database: the connection pool, the backend, and (on SQLite) the
/// process's single writer. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("backend", &self.inner.backend).field("target", &self.inner.target).finish()
    }
}

/// A unit of work for [`Db::write`]: runs on an open transaction (or
/// savepoint) and may be run again if its commit had to be retried, so it
/// must not consume what it captures (clone it inside).
pub trait WriteUnit<T, E>: for<'c> FnMut(&'c mut DbConn) -> BoxFuture<'c, Result<T, E>> + Send + 'static {}

impl<T, E, F> WriteUnit<T, E> for F where
    F: for<'c> FnMut(&'c mut DbConn) -> BoxFuture<'c, Result<T, E>> + Send + 'static
{
}

/// An error a unit of work can fail with: the writer reports its own
/// failures (the commit, the savepoint) through `From<sqlx::Error>`, and on
/// PostgreSQL retries a unit whose database error was a deadlock or a
/// serialization failure.
pub trait WriteError: From<sqlx::Error> + Send + 'static {
    /// The database error behind this error, if it is one.
    fn as_database_error(&self) -> Option<&sqlx::Error>;
}

impl WriteError for sqlx::Error {
    fn as_database_error(&self) -> Option<&sqlx::Error> {
        Some(self)
    }
}

impl Db {
    /// The connection pool, for reads.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// What this database is, for logs: the file, or the server's host,
    /// port and database (never a password).
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// The PostgreSQL server's URL, password included (never log it).
    pub(crate) fn server_url(&self) -> Option<&str> {
        self.inner.server_url.as_deref()
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<(), DbError> {
        apply_migrations(self, &mut MigrationProgress::Silent).await
    }

    /// Runs `unit` in a write transaction and answers once its effects are
    /// committed (durable at the configured level), or with its error, in
    /// which case none of its effects remain. See the module docs for how
    /// units of many callers share a commit.
    pub async fn write<T, E, F>(&self, unit: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: WriteError,
        F: WriteUnit<T, E>,
    {
        match &self.inner.writer {
            Some(writer) => writer.submit(unit).await,
            None => postgres::write(&self.inner.pool, unit).await,
        }
    }

    /// Starts a write transaction on a pooled connection, outside the group
    /// commit: `BEGIN IMMEDIATE` on SQLite (busy retried with backoff). For
    /// tools and tests; application code uses [`Db::write`].
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        let statement = match self.inner.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        let mut delay = Duration::from_millis(1);
        loop {
            match Tx::begin(self.inner.pool.acquire().await?, statement).await {
                Err(e) if is_busy(&e) => {
                    metrics::counter!(BUSY_RETRIES).increment(1);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(100));
                }
                other => return other,
            }
        }
    }

    /// A connection of sqlx's own driver (for its migrator), set up as
    /// Kassa's connections are.
    pub(crate) async fn sqlx_connection(&self) -> Result<sqlx::AnyConnection, sqlx::Error> {
        use sqlx::ConnectOptions;
        let mut conn = self.inner.migrations.connect().await?;
        if self.inner.backend == Backend::Sqlite {
            self.inner.pragmas.apply(&mut conn).await?;
        }
        Ok(conn)
    }

    /// The group-commit writer's counters (SQLite only).
    pub fn writer_stats(&self) -> Option<WriterStats> {
        self.inner.writer.as_ref().map(writer::Writer::stats)
    }

    /// Closes every connection once the writer has committed what it holds.
    pub async fn close(&self) {
        if let Some(writer) = &self.inner.writer {
            writer.stop().await;
        }
        self.inner.pool.close().await;
    }
}

/// Counter: operations retried because SQLite's write lock was held by another connection.
pub const BUSY_RETRIES: &str = "kassa_sqlite_busy_retries_total";
/// Histogram: units of work committed together by one group commit.
pub const GROUP_COMMIT_UNITS: &str = "kassa_db_group_commit_units";
/// Counter: PostgreSQL transactions retried after a deadlock or serialization failure.
pub const WRITE_RETRIES: &str = "kassa_db_write_retries_total";

/// Registers the help text of the database metrics with the installed
/// recorder (the busy-retry counter is described with the queue's metrics).
pub fn describe_metrics() {
    metrics::describe_histogram!(GROUP_COMMIT_UNITS, "Units of work committed together by one group commit.");
    metrics::describe_counter!(
        WRITE_RETRIES,
        "PostgreSQL write transactions retried after a deadlock or serialization failure."
    );
}

/// Whether an error is SQLite reporting a lock held by another connection
/// (`SQLITE_BUSY`, `SQLITE_LOCKED` and their extended codes), which is worth retrying.
pub fn is_busy(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // PostgreSQL codes are five characters; SQLite's are numbers.
            // Extended result codes keep the primary code in the low byte.
            code.parse::<i32>().is_ok_and(|code| matches!(code & 0xff, 5 | 6))
        }),
        _ => false,
    }
}

/// Whether an error is a uniqueness violation (either backend).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

/// Whether the database could not be reached (server down, connection
/// lost, pool exhausted): the caller should answer 503 or retry later, not
/// report a bug.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL: admin shutdown, crash shutdown, cannot connect now, connection failures.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "08000" | "08003" | "08006" | "08001" | "08004")
        }),
        sqlx::Error::Protocol(message) => message.contains("connection") || message.contains("closed"),
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
        let db = args(&data_dir, None).open().await.expect("connect");
        let mode: String = sqlx::query_scalar("pragma journal_mode").fetch_one(db.pool()).await.expect("journal mode");
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("pragma foreign_keys").fetch_one(db.pool()).await.expect("fk");
        assert_eq!(fk, 1);
        let synchronous: i64 = sqlx::query_scalar("pragma synchronous").fetch_one(db.pool()).await.expect("sync");
        assert_eq!(synchronous, 2, "FULL");
        assert!(data_dir.join("kassa.db").exists());
        assert_eq!(db.backend(), Backend::Sqlite);
    }

    #[tokio::test]
    async fn relative_and_absolute_urls_create_the_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("sub/abs.db");
        let url = format!("sqlite://{}", file.display());
        args(tmp.path(), Some(url)).open().await.expect("connect");
        assert!(file.exists());
    }

    #[test]
    fn an_unknown_scheme_is_refused_without_echoing_a_password() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = args(tmp.path(), Some("mysql://root:hunter2@db/x".into())).backend().unwrap_err();
        assert!(matches!(err, DbError::InvalidUrl { .. }));
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn postgres_urls_select_postgres() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for url in ["postgres://u@h/db", "postgresql://u:p@h:5433/db"] {
            assert_eq!(args(tmp.path(), Some(url.into())).backend().expect("valid"), Backend::Postgres);
        }
    }
}
