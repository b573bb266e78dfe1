//! Which database the processes under test run on. `cargo test` runs every
//! black-box test on SQLite; with `KASSA_TEST_POSTGRES_URL` set each test
//! written with [`black_box!`](crate::black_box) also runs on PostgreSQL,
//! in a database of its own that is dropped afterwards.

use std::future::Future;
use std::path::Path;

use kassa_common::db::scratch::{create_postgres_database, drop_postgres_database, postgres_server_url};
use kassa_common::db::{Backend, Db, DbArgs, Durability};

tokio::task_local! {
    static BACKEND: Backend;
}

/// The backend of the test running now (SQLite outside [`black_box!`](crate::black_box)).
pub fn current() -> Backend {
    BACKEND.try_with(|backend| *backend).unwrap_or(Backend::Sqlite)
}

/// Runs a test body with `backend` as [`current`].
pub async fn scoped<F: Future>(backend: Backend, body: F) -> F::Output {
    BACKEND.scope(backend, body).await
}

/// Whether PostgreSQL tests can run; prints a note when they are skipped.
pub fn postgres_available() -> bool {
    let available = postgres_server_url().is_some();
    if !available {
        eprintln!("skipped on PostgreSQL: {} is not set", kassa_common::db::scratch::POSTGRES_URL_VAR);
    }
    available
}

/// The database of one test: an SQLite file in the test's data directory,
/// or a fresh database on the PostgreSQL server (dropped with this value).
pub struct TestDatabase {
    url: String,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// A database for [`current`]'s backend; on SQLite the file
    /// `kassa.db` in `data_dir` (created by the first process that opens it).
    pub async fn create(data_dir: &Path) -> TestDatabase {
        match current() {
            Backend::Sqlite => TestDatabase::sqlite_in(data_dir),
            Backend::Postgres => {
                let server = postgres_server_url().expect("PostgreSQL tests run only with KASSA_TEST_POSTGRES_URL");
                TestDatabase::on_postgres_server(&server).await
            }
        }
    }

    /// The SQLite file `kassa.db` in `data_dir`.
    pub fn sqlite_in(data_dir: &Path) -> TestDatabase {
        TestDatabase { url: format!("sqlite://{}", data_dir.join("kassa.db").display()), postgres: None }
    }

    /// A fresh database on the PostgreSQL server of `server_url` (any
    /// database on it that the user may connect to), dropped with this
    /// value; for the benchmarks, which are given a server on their
    /// command line.
    pub async fn on_postgres_server(server_url: &str) -> TestDatabase {
        let (database, url) = create_postgres_database(server_url).await;
        TestDatabase { url, postgres: Some((server_url.to_owned(), database)) }
    }

    /// `KASSA_DATABASE_URL` for the processes under test.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        if self.postgres.is_some() { Backend::Postgres } else { Backend::Sqlite }
    }

    /// Opens the database (migrated) for the test's own reads and checks.
    pub async fn open(&self, data_dir: &Path) -> Db {
        let args = DbArgs { database_url: Some(self.url.clone()), ..DbArgs::in_dir(data_dir, Durability::Normal) };
        args.open().await.expect("the test database opens")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((server, database)) = self.postgres.take() else { return };
        let dropped = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                runtime.block_on(drop_postgres_database(&server, &database));
            }
        });
        let _ = dropped.join();
    }
}

/// Defines a black-box test that runs on both backends: a module `$name`
/// with a test `sqlite` and a test `postgres` (skipped unless
/// `KASSA_TEST_POSTGRES_URL` is set), each running the body with its
/// backend as [`current`]. Write the attributes (`#[tokio::test(…)]`,
/// docs) as for a plain test.
#[macro_export]
macro_rules! black_box {
    ($(#[$attr:meta])* async fn $name:ident() $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body() $body

            $(#[$attr])*
            async fn sqlite() {
                $crate::backend::scoped(::kassa_common::db::Backend::Sqlite, body()).await
            }

            $(#[$attr])*
            async fn postgres() {
                if $crate::backend::postgres_available() {
                    $crate::backend::scoped(::kassa_common::db::Backend::Postgres, body()).await
                }
            }
        }
    };
    ($(#[$attr:meta])* async fn $name:ident() -> $ret:ty $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body() -> $ret $body

            $(#[$attr])*
            async fn sqlite() -> $ret {
                $crate::backend::scoped(::kassa_common::db::Backend::Sqlite, body()).await
            }

            $(#[$attr])*
            async fn postgres() -> $ret {
                if $crate::backend::postgres_available() {
                    $crate::backend::scoped(::kassa_common::db::Backend::Postgres, body()).await
                } else {
                    Ok(())
                }
            }
        }
    };
}
