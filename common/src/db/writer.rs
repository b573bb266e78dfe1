//! Group commit on SQLite: one writer task per process owns one connection
//! and commits the units of work of many callers in one `BEGIN IMMEDIATE`
//! transaction. Each unit runs in its own savepoint, so a unit that fails is
//! rolled back alone and answered at once with its error; the others are
//! answered only after the commit, so an answer always means "durable".
//!
//! Units queue in memory while a commit is in progress and form the next
//! group, so a busy process pays one fsync and one lock acquisition for many
//! requests, and an idle one commits at once. If the transaction itself
//! fails (the lock stays taken by another process past the busy timeout, a
//! savepoint cannot be released), the units that had succeeded are run
//! again in a new transaction — a unit is an `FnMut` for that reason.
//!
//! Between processes, turns at SQLite's write lock are taken with
//! [`ProcessLock`] rather than SQLite's sleeping busy handler.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::path::PathBuf;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::Checkpointer;
use super::process_lock::{LockFailure, ProcessLock};
use super::sqlite_conn::{Settings, SqliteConn};
use super::{BUSY_RETRIES, DbConn, Durability, GROUP_COMMIT_UNITS, WriteError, WriteUnit, is_busy};

/// Most units in one transaction: bounds how long one commit holds the
/// write lock (and so the latency of the units queued behind it).
const MAX_UNITS_PER_COMMIT: usize = 256;
/// Transactions a group may take before its units are answered with the error.
const MAX_TRIES: u32 = 5;
/// How long the writer keeps asking for SQLite's write lock (each ask
/// already waits the busy timeout) before failing the group.
const LOCK_PATIENCE: Duration = Duration::from_secs(30);

/// What the writer has done so far, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed.
    pub commits: u64,
    /// Units committed (their callers got success).
    pub units_committed: u64,
    /// Units answered with their own error (rolled back alone).
    pub units_failed: u64,
    /// Units waiting for the next group.
    pub queued: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    units_committed: AtomicU64,
    units_failed: AtomicU64,
    queued: AtomicU64,
}

enum Message {
    Unit(Box<dyn ErasedUnit>),
    /// Answered once everything sent before has been committed or failed
    /// and the writer has closed its connection and stopped.
    Stop(oneshot::Sender<()>),
}

/// The handle callers submit units through.
pub(super) struct Writer {
    messages: mpsc::UnboundedSender<Message>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Starts the writer task on the SQLite `file` (it opens a connection
    /// of its own with `settings`), taking turns with other processes
    /// through `lock`.
    pub(super) fn start(file: PathBuf, settings: Settings, lock: ProcessLock, checkpointer: Checkpointer) -> Writer {
        let (messages, inbox) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let connection = Connection { file, settings };
        tokio::spawn(run(connection, inbox, counters.clone(), Some(lock), checkpointer));
        Writer { messages, counters }
    }

    pub(super) async fn submit<T, E, F>(&self, unit: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: WriteError,
        F: WriteUnit<T, E>,
    {
        let (reply, answer) = oneshot::channel();
        let unit = Box::new(Typed { unit, result: None, reply });
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        if self.messages.send(Message::Unit(unit)).is_err() {
            self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(E::from(sqlx::Error::PoolClosed));
        }
        answer.await.unwrap_or_else(|_| Err(E::from(sqlx::Error::WorkerCrashed)))
    }

    /// Commits what is queued, closes the writer's connection and stops
    /// it; later units fail with `PoolClosed`.
    pub(super) async fn stop(&self) {
        let (reply, answer) = oneshot::channel();
        if self.messages.send(Message::Stop(reply)).is_ok() {
            let _ = answer.await;
        }
    }

    pub(super) fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            units_committed: self.counters.units_committed.load(Ordering::Relaxed),
            units_failed: self.counters.units_failed.load(Ordering::Relaxed),
            queued: self.counters.queued.load(Ordering::Relaxed),
        }
    }
}

/// A unit with its result type erased, so units of every type share the queue.
trait ErasedUnit: Send {
    /// Runs the unit on the open savepoint; true when it succeeded (its
    /// value is kept until the commit).
    fn run<'c>(&'c mut self, conn: &'c mut DbConn) -> BoxFuture<'c, bool>;
    /// Answers the caller with the kept value or the unit's own error.
    fn answer(self: Box<Self>);
    /// Answers the caller with a failure of the transaction.
    fn fail(self: Box<Self>, error: sqlx::Error);
}

struct Typed<T, E, F> {
    unit: F,
    result: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<T, E, F> ErasedUnit for Typed<T, E, F>
where
    T: Send + 'static,
    E: WriteError,
    F: WriteUnit<T, E>,
{
    fn run<'c>(&'c mut self, conn: &'c mut DbConn) -> BoxFuture<'c, bool> {
        Box::pin(async move {
            let running = AssertUnwindSafe((self.unit)(conn)).catch_unwind();
            let result = match running.await {
                Ok(result) => result,
                Err(_) => {
                    tracing::error!("a unit of work panicked; it was rolled back");
                    Err(E::from(sqlx::Error::Protocol("a unit of work panicked".into())))
                }
            };
            let succeeded = result.is_ok();
            self.result = Some(result);
            succeeded
        })
    }

    fn answer(self: Box<Self>) {
        let result =
            self.result.unwrap_or_else(|| Err(E::from(sqlx::Error::Protocol("the unit of work never ran".into()))));
        // The caller may have gone away (a client disconnected): the effect stands.
        let _ = self.reply.send(result);
    }

    fn fail(self: Box<Self>, error: sqlx::Error) {
        let _ = self.reply.send(Err(E::from(error)));
    }
}

/// How the writer opens its connection (again, after one broke).
struct Connection {
    file: PathBuf,
    settings: Settings,
}

impl Connection {
    fn open(&self) -> Result<DbConn, sqlx::Error> {
        SqliteConn::open(&self.file, &self.settings).map(DbConn::sqlite)
    }
}

async fn run(
    connection: Connection,
    mut inbox: mpsc::UnboundedReceiver<Message>,
    counters: Arc<Counters>,
    // `None` once file locks turned out not to work here.
    mut lock: Option<ProcessLock>,
    checkpointer: Checkpointer,
) {
    let mut conn: Option<DbConn> = None;
    let mut group: Vec<Box<dyn ErasedUnit>> = Vec::new();
    let mut stopped = None;
    while let Some(first) = inbox.recv().await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Unit(unit) => {
                    counters.queued.fetch_sub(1, Ordering::Relaxed);
                    group.push(unit);
                }
                Message::Stop(reply) => stopped = Some(reply),
            }
            if group.len() < MAX_UNITS_PER_COMMIT && stopped.is_none() {
                next = inbox.try_recv().ok();
            }
        }
        if !group.is_empty()
            && commit_group(&connection, &mut conn, &mut lock, std::mem::take(&mut group), &counters).await
        {
            checkpointer.committed();
        }
        if stopped.is_some() {
            break;
        }
    }
    drop(conn);
    inbox.close();
    let _ = tokio::task::spawn_blocking(move || checkpointer.stop()).await;
    if let Some(reply) = stopped {
        let _ = reply.send(());
    }
}

/// How one transaction over a group ended.
enum Attempt {
    /// Committed: answer these units with their values.
    Committed(Vec<Box<dyn ErasedUnit>>),
    /// The transaction was lost; run these units again.
    Again { units: Vec<Box<dyn ErasedUnit>>, error: sqlx::Error, connection_broken: bool },
}

async fn commit_group(
    opener: &Connection,
    conn: &mut Option<DbConn>,
    lock: &mut Option<ProcessLock>,
    mut units: Vec<Box<dyn ErasedUnit>>,
    counters: &Counters,
) -> bool {
    let mut tries = 0;
    loop {
        tries += 1;
        let connection = match conn {
            Some(connection) => connection,
            None => match opener.open() {
                Ok(connection) => conn.insert(connection),
                Err(error) => {
                    fail_all(units, &error, counters);
                    return false;
                }
            },
        };
        let turn = match lock {
            None => None,
            Some(files) => match files.acquire(LOCK_PATIENCE).await {
                Ok(held) => Some(held),
                Err(LockFailure::TimedOut) => {
                    fail_all(units, &sqlx::Error::PoolTimedOut, counters);
                    return false;
                }
                Err(LockFailure::Unsupported(error)) => {
                    tracing::warn!(%error, "cannot take turns at the write lock by file lock; relying on SQLite's");
                    *lock = None;
                    None
                }
            },
        };
        let attempted = attempt(connection, units, opener.settings.synchronous, counters).await;
        // Let the next process in before answering this group's callers.
        drop(turn);
        match attempted {
            Attempt::Committed(done) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                counters.units_committed.fetch_add(done.len() as u64, Ordering::Relaxed);
                metrics::histogram!(GROUP_COMMIT_UNITS).record(done.len() as f64);
                for unit in done {
                    unit.answer();
                }
                return true;
            }
            Attempt::Again { units: left, error, connection_broken } => {
                if connection_broken {
                    *conn = None;
                }
                if tries >= MAX_TRIES || left.is_empty() {
                    fail_all(left, &error, counters);
                    return false;
                }
                tracing::warn!(%error, units = left.len(), "group commit failed; running its units again");
                tokio::time::sleep(Duration::from_millis(5 << tries)).await;
                units = left;
            }
        }
    }
}

/// One transaction over `units`: `BEGIN IMMEDIATE` (asked again while
/// another process holds the lock), then each unit after a savepoint, a
/// failing one rolled back to it and answered at once.
async fn attempt(
    conn: &mut DbConn,
    units: Vec<Box<dyn ErasedUnit>>,
    durability: Durability,
    counters: &Counters,
) -> Attempt {
    let started = Instant::now();
    let mut delay = Duration::from_millis(1);
    loop {
        match sqlite(conn).and_then(|sqlite| sqlite.control("BEGIN IMMEDIATE")) {
            Ok(()) => return run_units(conn, units, durability, counters).await,
            Err(error) if is_busy(&error) && started.elapsed() < LOCK_PATIENCE => {
                metrics::counter!(BUSY_RETRIES).increment(1);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(50));
            }
            Err(error) => {
                let connection_broken = !is_busy(&error);
                return Attempt::Again { units, error, connection_broken };
            }
        }
    }
}

/// The writer's connection as the SQLite connection it always is.
fn sqlite(conn: &mut DbConn) -> Result<&mut SqliteConn, sqlx::Error> {
    conn.as_sqlite().ok_or_else(|| sqlx::Error::Protocol("the group-commit writer runs on SQLite only".into()))
}

/// Runs `units` on the open transaction and commits it; on any way out
/// other than a commit, the transaction is rolled back.
async fn run_units(
    conn: &mut DbConn,
    units: Vec<Box<dyn ErasedUnit>>,
    durability: Durability,
    counters: &Counters,
) -> Attempt {
    let attempt = run_units_in_transaction(conn, units, durability, counters).await;
    if let (Attempt::Again { .. }, Ok(sqlite)) = (&attempt, sqlite(conn))
        && sqlite.in_transaction()
    {
        let _ = sqlite.batch("ROLLBACK");
    }
    attempt
}

async fn run_units_in_transaction(
    conn: &mut DbConn,
    units: Vec<Box<dyn ErasedUnit>>,
    durability: Durability,
    counters: &Counters,
) -> Attempt {
    let mut succeeded: Vec<Box<dyn ErasedUnit>> = Vec::with_capacity(units.len());
    let mut queued = units.into_iter();
    while let Some(mut unit) = queued.next() {
        // Savepoints are never released: a unit that succeeded stays
        // nested inside the next unit's savepoint until the commit, which
        // saves a statement per unit; one that failed is rolled back to
        // its own savepoint (the innermost of that name), leaving the units
        // before it untouched. One name keeps both statements prepared.
        if let Err(error) = sqlite(conn).and_then(|sqlite| sqlite.control("SAVEPOINT kassa_unit")) {
            succeeded.push(unit);
            succeeded.extend(queued);
            return Attempt::Again { units: succeeded, error, connection_broken: true };
        }
        if unit.run(conn).await {
            succeeded.push(unit);
            continue;
        }
        match sqlite(conn).and_then(|sqlite| sqlite.control("ROLLBACK TO kassa_unit")) {
            Ok(()) => {
                counters.units_failed.fetch_add(1, Ordering::Relaxed);
                unit.answer();
            }
            Err(error) => {
                // SQLite gave up the whole transaction (e.g. the disk is
                // full). This unit is the likely cause: answer it; the
                // others run again.
                tracing::error!(%error, "a unit could not be rolled back alone; the group's transaction is lost");
                counters.units_failed.fetch_add(1, Ordering::Relaxed);
                unit.answer();
                succeeded.extend(queued);
                return Attempt::Again { units: succeeded, error, connection_broken: true };
            }
        }
    }
    let committed = match sqlite(conn) {
        Ok(sqlite) => sqlite.commit(durability).await,
        Err(error) => Err(error),
    };
    match committed {
        Ok(()) => Attempt::Committed(succeeded),
        Err(error) => {
            let connection_broken = !is_busy(&error);
            Attempt::Again { units: succeeded, error, connection_broken }
        }
    }
}

fn fail_all(units: Vec<Box<dyn ErasedUnit>>, error: &sqlx::Error, counters: &Counters) {
    tracing::error!(%error, units = units.len(), "a group commit failed; its callers get the error");
    counters.units_failed.fetch_add(units.len() as u64, Ordering::Relaxed);
    for unit in units {
        unit.fail(duplicate(error));
    }
}

/// A copy of `error` for each caller of a failed group, keeping the
/// distinctions callers act on (busy, unavailable).
fn duplicate(error: &sqlx::Error) -> sqlx::Error {
    match error {
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::WorkerCrashed => sqlx::Error::WorkerCrashed,
        other => sqlx::Error::Protocol(format!("the group commit failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Notify;

    use crate::db::scratch::ScratchDb;

    async fn count(db: &crate::db::Db) -> i64 {
        sqlx::query_scalar("select count(*) from group_commit_test").fetch_one(db.pool()).await.expect("count")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_unit_rolls_back_alone_and_the_others_commit_together() {
        let scratch = ScratchDb::sqlite().await;
        let db = scratch.db.clone();
        db.write(|tx| {
            Box::pin(async move {
                sqlx::raw_sql(
                    "create table group_commit_test (x integer not null unique);
                     insert into group_commit_test (x) values (100)",
                )
                .execute(tx)
                .await
                .map(drop)
            })
        })
        .await
        .expect("table");
        let before = db.writer_stats().expect("SQLite has a writer");

        // Hold the writer inside a unit so the next twenty queue up as one group.
        let (holding, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let held = tokio::spawn({
            let (db, holding, release) = (db.clone(), holding.clone(), release.clone());
            async move {
                db.write(move |_tx| {
                    let (holding, release) = (holding.clone(), release.clone());
                    Box::pin(async move {
                        holding.notify_one();
                        release.notified().await;
                        Ok::<_, sqlx::Error>(())
                    })
                })
                .await
            }
        });
        holding.notified().await;
        let mut units = Vec::new();
        for x in 0..20_i64 {
            let db = db.clone();
            units.push(tokio::spawn(async move {
                db.write(move |tx| {
                    Box::pin(async move {
                        // Unit 7 writes, then fails; unit 12 breaks the unique rule.
                        let value = if x == 12 { 100 } else { x };
                        sqlx::query("insert into group_commit_test (x) values ($1)")
                            .bind(value)
                            .execute(&mut *tx)
                            .await?;
                        if x == 7 {
                            return Err(sqlx::Error::Protocol("unit 7 fails after writing".into()));
                        }
                        Ok(x)
                    })
                })
                .await
            }));
        }
        // Once every unit waits in the writer's queue, let the group run.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while db.writer_stats().expect("writer").queued < 20 {
            assert!(std::time::Instant::now() < deadline, "the units never reached the writer");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        release.notify_one();
        held.await.expect("join").expect("the holding unit commits");
        let mut failed = Vec::new();
        for (x, unit) in units.into_iter().enumerate() {
            match unit.await.expect("join") {
                Ok(value) => assert_eq!(value, x as i64),
                Err(_) => failed.push(x),
            }
        }
        assert_eq!(failed, [7, 12], "only the failing units fail");
        assert_eq!(
            count(&db).await,
            19,
            "the others' rows are committed (and the first row), the failing ones' are not"
        );
        let present: Vec<i64> =
            sqlx::query_scalar("select x from group_commit_test order by x").fetch_all(db.pool()).await.expect("rows");
        assert!(!present.contains(&7), "unit 7's write was rolled back with it");
        let after = db.writer_stats().expect("writer");
        assert_eq!(after.commits - before.commits, 2, "the holding unit's group, then one group of twenty");
        assert_eq!(after.units_failed - before.units_failed, 2);
    }
}
