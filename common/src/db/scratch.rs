//! Scratch databases for tests and benchmarks: a fresh, migrated database
//! per use, on SQLite (a file in a temporary directory) or on the
//! PostgreSQL server named by `KASSA_TEST_POSTGRES_URL` (a new database on
//! it, dropped afterwards), so one test body can run on both backends.

use std::path::{Path, PathBuf};

use sqlx::Connection;

use super::{Backend, Db, DbArgs, Durability};

/// The variable naming the PostgreSQL server tests may create databases on,
/// e.g. `postgres://postgres@127.0.0.1:5432/postgres`.
pub const POSTGRES_URL_VAR: &str = "KASSA_TEST_POSTGRES_URL";

/// A fresh, migrated database, removed when dropped.
pub struct ScratchDb {
    /// The open database.
    pub db: Db,
    /// The settings that open it (for processes started on it).
    pub args: DbArgs,
    dir: tempfile::TempDir,
    postgres: Option<PostgresScratch>,
}

struct PostgresScratch {
    server_url: String,
    database: String,
}

impl ScratchDb {
    /// A fresh SQLite database at `synchronous=normal`.
    pub async fn sqlite() -> ScratchDb {
        let dir = tempfile::tempdir().expect("a temporary directory for the database");
        let args = DbArgs::in_dir(dir.path(), Durability::Normal);
        let db = args.open().await.expect("a scratch SQLite database opens");
        ScratchDb { db, args, dir, postgres: None }
    }

    /// A fresh database on the server of `KASSA_TEST_POSTGRES_URL`, or
    /// `None` (with a note on standard error) when it is not set.
    pub async fn postgres() -> Option<ScratchDb> {
        let Some(server_url) = postgres_server_url() else {
            eprintln!("skipped on PostgreSQL: {POSTGRES_URL_VAR} is not set");
            return None;
        };
        let (database, url) = create_postgres_database(&server_url).await;
        let dir = tempfile::tempdir().expect("a temporary data directory");
        let args = DbArgs { database_url: Some(url), ..DbArgs::in_dir(dir.path(), Durability::Normal) };
        let db = args.open().await.expect("a scratch PostgreSQL database opens");
        Some(ScratchDb { db, args, dir, postgres: Some(PostgresScratch { server_url, database }) })
    }

    /// A fresh database on `backend` (see [`ScratchDb::postgres`] for when that is `None`).
    pub async fn on(backend: Backend) -> Option<ScratchDb> {
        match backend {
            Backend::Sqlite => Some(ScratchDb::sqlite().await),
            Backend::Postgres => ScratchDb::postgres().await,
        }
    }

    /// A data directory that lives as long as the database.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The database's URL (a `sqlite://` file URL or a `postgres://` URL).
    pub fn url(&self) -> String {
        match &self.args.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.sqlite_file().display()),
        }
    }

    fn sqlite_file(&self) -> PathBuf {
        self.dir.path().join("kassa.db")
    }
}

/// The PostgreSQL server tests may use, if configured.
pub fn postgres_server_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR).ok().filter(|url| !url.trim().is_empty())
}

/// Creates an empty database with a fresh name on the server of
/// `server_url`; returns its name and URL.
pub async fn create_postgres_database(server_url: &str) -> (String, String) {
    let database = format!("kassa_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::postgres::PgConnection::connect(server_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the PostgreSQL server of {POSTGRES_URL_VAR}: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {database}")))
        .execute(&mut admin)
        .await
        .expect("the test user may create databases");
    let _ = admin.close().await;
    let mut url = url::Url::parse(server_url).expect("a valid PostgreSQL URL");
    url.set_path(&database);
    (database, url.to_string())
}

/// Drops a database made by [`create_postgres_database`], closing whatever
/// connections are still open on it.
pub async fn drop_postgres_database(server_url: &str, database: &str) {
    if let Ok(mut admin) = sqlx::postgres::PgConnection::connect(server_url).await {
        let sql = format!("drop database if exists {database} with (force)");
        if let Err(error) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await {
            eprintln!("could not drop the scratch database {database}: {error}");
        }
        let _ = admin.close().await;
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let Some(scratch) = self.postgres.take() else { return };
        // Drop runs outside async code's reach: drop the database from a
        // thread with its own runtime, and wait for it.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                runtime.block_on(drop_postgres_database(&scratch.server_url, &scratch.database));
            }
        });
        let _ = dropped.join();
    }
}

/// Runs one async test body on both backends: defines a module `$name`
/// with tests `sqlite` and `postgres`, each giving the body a fresh
/// [`ScratchDb`]. The PostgreSQL test is skipped (with a note) unless
/// `KASSA_TEST_POSTGRES_URL` is set; CI sets it.
#[macro_export]
macro_rules! on_both_backends {
    ($(#[$meta:meta])* async fn $name:ident($scratch:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($scratch: $crate::db::scratch::ScratchDb) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                body($crate::db::scratch::ScratchDb::sqlite().await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(scratch) = $crate::db::scratch::ScratchDb::postgres().await {
                    body(scratch).await
                }
            }
        }
    };
}
