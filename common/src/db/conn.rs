//! Connections of either backend behind sqlx's query API: [`DbConn`] (one
//! connection), [`Pool`] (the readers) and [`Tx`] (a transaction on a
//! pooled connection). Store code runs `sqlx::query(…)` on a `&mut DbConn`
//! or a `&Pool` whatever the backend: on PostgreSQL the query goes to
//! sqlx's own connection; on SQLite it runs on the calling thread through
//! [`SqliteConn`] (see that module for why).

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{self, BoxFuture};
use futures::stream::{self, BoxStream};
use futures::{FutureExt, StreamExt};
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTransactionManager, AnyTypeInfo};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Either, Execute, Executor};
use sqlx_core::sql_str::{SqlSafeStr, SqlStr};
use sqlx_core::transaction::TransactionManager;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Backend;
use super::sqlite_conn::{Produced, Settings, SqliteConn, Want};

/// How long [`Pool::acquire`] waits for a free connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// One database connection, pooled or the writer's own. Store functions
/// take `&mut DbConn` (a pooled connection or an open transaction) so a
/// caller composes several into one unit of work; it is an sqlx
/// [`Executor`] for the `Any` database.
#[derive(Debug)]
pub struct DbConn {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Sqlite(SqliteConn),
    Postgres(PoolConnection<Any>),
}

impl DbConn {
    pub(crate) fn sqlite(conn: SqliteConn) -> DbConn {
        DbConn { kind: Kind::Sqlite(conn) }
    }

    pub(crate) fn postgres(conn: PoolConnection<Any>) -> DbConn {
        DbConn { kind: Kind::Postgres(conn) }
    }

    /// The backend this connection talks to.
    pub fn backend(&self) -> Backend {
        match self.kind {
            Kind::Sqlite(_) => Backend::Sqlite,
            Kind::Postgres(_) => Backend::Postgres,
        }
    }

    /// The SQLite connection, for the group-commit writer.
    pub(crate) fn as_sqlite(&mut self) -> Option<&mut SqliteConn> {
        match &mut self.kind {
            Kind::Sqlite(conn) => Some(conn),
            Kind::Postgres(_) => None,
        }
    }

    /// Opens a transaction with `statement` (`BEGIN` when `None`).
    pub(crate) async fn begin(&mut self, statement: Option<&'static str>) -> Result<(), sqlx::Error> {
        match &mut self.kind {
            Kind::Sqlite(conn) => conn.batch(statement.unwrap_or("BEGIN")),
            Kind::Postgres(conn) => AnyTransactionManager::begin(conn, statement.map(SqlSafeStr::into_sql_str)).await,
        }
    }

    /// Commits the open transaction.
    pub(crate) async fn commit(&mut self) -> Result<(), sqlx::Error> {
        match &mut self.kind {
            Kind::Sqlite(conn) => conn.batch("COMMIT"),
            Kind::Postgres(conn) => AnyTransactionManager::commit(conn).await,
        }
    }

    /// Rolls the open transaction back.
    pub(crate) async fn rollback(&mut self) -> Result<(), sqlx::Error> {
        match &mut self.kind {
            Kind::Sqlite(conn) => conn.batch("ROLLBACK"),
            Kind::Postgres(conn) => AnyTransactionManager::rollback(conn).await,
        }
    }

    /// Rolls back without waiting (for `Drop`): at once on SQLite; on
    /// PostgreSQL before the connection is next used.
    fn start_rollback(&mut self) {
        match &mut self.kind {
            Kind::Sqlite(conn) => {
                if conn.in_transaction() {
                    let _ = conn.batch("ROLLBACK");
                }
            }
            Kind::Postgres(conn) => AnyTransactionManager::start_rollback(conn),
        }
    }
}

/// Runs `query` on an SQLite connection, taking what it wants.
fn run_sqlite<'q, E: Execute<'q, Any>>(
    conn: &mut SqliteConn,
    mut query: E,
    want: Want,
) -> Result<Produced, sqlx::Error> {
    let args = query.take_arguments().map_err(sqlx::Error::Encode)?;
    // As sqlx does: a statement without arguments (raw SQL) is not cached.
    let persistent = query.persistent() && args.is_some();
    let sql = query.sql();
    conn.run(sql.as_str(), args, persistent, want)
}

fn summed(produced: Produced) -> AnyQueryResult {
    let mut total = AnyQueryResult::default();
    total.extend(produced.into_iter().filter_map(Either::left));
    total
}

fn first_row(produced: Produced) -> Option<AnyRow> {
    produced.into_iter().find_map(Either::right)
}

fn rows(produced: Produced) -> Vec<AnyRow> {
    produced.into_iter().filter_map(Either::right).collect()
}

fn unsupported<T>(what: &str) -> Result<T, sqlx::Error> {
    Err(sqlx::Error::Protocol(format!("{what} is not supported on Kassa's SQLite connections")))
}

impl<'c> Executor<'c> for &'c mut DbConn {
    type Database = Any;

    fn execute<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<AnyQueryResult, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match &mut self.kind {
            Kind::Sqlite(conn) => future::ready(run_sqlite(conn, query, Want::Nothing).map(summed)).boxed(),
            Kind::Postgres(conn) => (&mut **conn).execute(query),
        }
    }

    fn fetch_all<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Vec<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match &mut self.kind {
            Kind::Sqlite(conn) => future::ready(run_sqlite(conn, query, Want::AllRows).map(rows)).boxed(),
            Kind::Postgres(conn) => (&mut **conn).fetch_all(query),
        }
    }

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match &mut self.kind {
            Kind::Sqlite(conn) => match run_sqlite(conn, query, Want::AllRows) {
                Ok(produced) => stream::iter(produced.into_iter().map(Ok)).boxed(),
                Err(error) => stream::once(future::ready(Err(error))).boxed(),
            },
            Kind::Postgres(conn) => (&mut **conn).fetch_many(query),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match &mut self.kind {
            Kind::Sqlite(conn) => future::ready(run_sqlite(conn, query, Want::FirstRow).map(first_row)).boxed(),
            Kind::Postgres(conn) => (&mut **conn).fetch_optional(query),
        }
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        match &mut self.kind {
            Kind::Sqlite(_) => future::ready(unsupported("prepare")).boxed(),
            Kind::Postgres(conn) => (&mut **conn).prepare_with(sql, parameters),
        }
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<Any>, sqlx::Error>>
    where
        'c: 'e,
    {
        match &mut self.kind {
            Kind::Sqlite(_) => future::ready(unsupported("describe")).boxed(),
            Kind::Postgres(conn) => (&mut **conn).describe(sql),
        }
    }
}

/// The reading connections of a database (on SQLite; on PostgreSQL every
/// connection). Cheap to clone; `&Pool` is an sqlx [`Executor`] that runs
/// each query on a connection of its own.
#[derive(Clone, Debug)]
pub struct Pool {
    kind: PoolKind,
}

#[derive(Clone, Debug)]
enum PoolKind {
    Sqlite(Arc<Readers>),
    Postgres(AnyPool),
}

impl Pool {
    pub(crate) fn postgres(pool: AnyPool) -> Pool {
        Pool { kind: PoolKind::Postgres(pool) }
    }

    /// A pool of at most `max` connections to the SQLite `file`, one of
    /// them opened now (so a bad file fails here).
    pub(crate) fn sqlite(file: &std::path::Path, settings: Settings, max: u32) -> Result<Pool, sqlx::Error> {
        let first = SqliteConn::open(file, &settings)?;
        let readers = Readers {
            file: file.to_path_buf(),
            settings,
            idle: Mutex::new(vec![first]),
            permits: Arc::new(Semaphore::new(max as usize)),
        };
        Ok(Pool { kind: PoolKind::Sqlite(Arc::new(readers)) })
    }

    /// A connection of the pool, returned to it when dropped.
    pub async fn acquire(&self) -> Result<DbConn, sqlx::Error> {
        match &self.kind {
            PoolKind::Sqlite(readers) => readers.acquire().await.map(DbConn::sqlite),
            PoolKind::Postgres(pool) => pool.acquire().await.map(DbConn::postgres),
        }
    }

    /// A read transaction on a connection of the pool: the queries on it
    /// see one snapshot of the database. Rolled back when dropped.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let mut conn = self.acquire().await?;
        conn.begin(None).await?;
        Ok(Tx { conn, open: true })
    }

    /// Closes the pool: idle connections now, the others as they come back.
    pub async fn close(&self) {
        match &self.kind {
            PoolKind::Sqlite(readers) => readers.close(),
            PoolKind::Postgres(pool) => pool.close().await,
        }
    }
}

impl<'p> Executor<'p> for &'p Pool {
    type Database = Any;

    fn execute<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<AnyQueryResult, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match &self.kind {
            PoolKind::Sqlite(readers) => readers.run(query, Want::Nothing).map(|r| r.map(summed)).boxed(),
            PoolKind::Postgres(pool) => pool.execute(query),
        }
    }

    fn fetch_all<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Vec<AnyRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match &self.kind {
            PoolKind::Sqlite(readers) => readers.run(query, Want::AllRows).map(|r| r.map(rows)).boxed(),
            PoolKind::Postgres(pool) => pool.fetch_all(query),
        }
    }

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match &self.kind {
            PoolKind::Sqlite(readers) => readers
                .run(query, Want::AllRows)
                .map(|produced| match produced {
                    Ok(produced) => stream::iter(produced.into_iter().map(Ok)).left_stream(),
                    Err(error) => stream::once(future::ready(Err(error))).right_stream(),
                })
                .flatten_stream()
                .boxed(),
            PoolKind::Postgres(pool) => pool.fetch_many(query),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Any>,
    {
        match &self.kind {
            PoolKind::Sqlite(readers) => readers.run(query, Want::FirstRow).map(|r| r.map(first_row)).boxed(),
            PoolKind::Postgres(pool) => pool.fetch_optional(query),
        }
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        match &self.kind {
            PoolKind::Sqlite(_) => future::ready(unsupported("prepare")).boxed(),
            PoolKind::Postgres(pool) => pool.prepare_with(sql, parameters),
        }
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<Any>, sqlx::Error>>
    where
        'p: 'e,
    {
        match &self.kind {
            PoolKind::Sqlite(_) => future::ready(unsupported("describe")).boxed(),
            PoolKind::Postgres(pool) => pool.describe(sql),
        }
    }
}

/// SQLite's reading connections: opened on demand up to a limit, kept idle
/// between uses.
pub(crate) struct Readers {
    file: std::path::PathBuf,
    settings: Settings,
    idle: Mutex<Vec<SqliteConn>>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers").field("file", &self.file).finish()
    }
}

/// Where a pooled SQLite connection goes back to, and its place in the pool.
pub(crate) struct Home {
    readers: Arc<Readers>,
    _permit: OwnedSemaphorePermit,
}

impl Home {
    /// Takes `conn` back: idle for the next caller, with any transaction
    /// it was left in rolled back.
    pub(crate) fn give_back(self, conn: SqliteConn) {
        if self.readers.permits.is_closed() || !conn.is_open() {
            return;
        }
        if conn.in_transaction() && conn.batch("ROLLBACK").is_err() {
            return;
        }
        if let Ok(mut idle) = self.readers.idle.lock() {
            idle.push(conn);
        }
    }
}

impl Readers {
    async fn acquire(self: &Arc<Self>) -> Result<SqliteConn, sqlx::Error> {
        let permit = match tokio::time::timeout(ACQUIRE_TIMEOUT, self.permits.clone().acquire_owned()).await {
            Err(_) => return Err(sqlx::Error::PoolTimedOut),
            Ok(Err(_)) => return Err(sqlx::Error::PoolClosed),
            Ok(Ok(permit)) => permit,
        };
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut conn = match idle {
            Some(conn) => conn,
            None => SqliteConn::open(&self.file, &self.settings)?,
        };
        conn.set_home(Home { readers: self.clone(), _permit: permit });
        Ok(conn)
    }

    /// Runs one query on a connection of its own.
    fn run<'e, 'q: 'e, E>(self: &Arc<Self>, query: E, want: Want) -> BoxFuture<'e, Result<Produced, sqlx::Error>>
    where
        E: 'q + Execute<'q, Any>,
    {
        let readers = self.clone();
        async move {
            let mut conn = readers.acquire().await?;
            run_sqlite(&mut conn, query, want)
        }
        .boxed()
    }

    fn close(&self) {
        self.permits.close();
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}

/// A transaction on a pooled connection; rolled back unless committed.
/// Dereferences to the connection, so `&mut *tx` is a `&mut DbConn`.
#[derive(Debug)]
pub struct Tx {
    conn: DbConn,
    open: bool,
}

impl Tx {
    /// Starts a transaction with `statement` on `conn`.
    pub(crate) async fn begin(mut conn: DbConn, statement: &'static str) -> Result<Tx, sqlx::Error> {
        conn.begin(Some(statement)).await?;
        Ok(Tx { conn, open: true })
    }

    /// Commits the transaction.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.open = false;
        self.conn.commit().await
    }

    /// Rolls the transaction back.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        self.open = false;
        self.conn.rollback().await
    }
}

impl Deref for Tx {
    type Target = DbConn;

    fn deref(&self) -> &DbConn {
        &self.conn
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut DbConn {
        &mut self.conn
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open {
            self.conn.start_rollback();
        }
    }
}
