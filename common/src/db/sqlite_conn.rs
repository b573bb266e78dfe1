//! SQLite connections that run statements on the calling thread.
//!
//! sqlx's SQLite driver gives every connection a thread of its own and
//! sends each statement there and its rows back: two thread wake-ups per
//! statement. The profile in `docs/benchmarks.md` found those wake-ups to be
//! a quarter of Kassa's CPU time and the reason the single writer ran at a
//! tenth of what SQLite itself can do. A [`SqliteConn`] is a plain SQLite
//! connection (rusqlite) used directly by the task that holds it: Kassa's
//! statements touch a few pages already in memory and take microseconds,
//! less than one hand-off. The one slow call, a commit that waits for the
//! disk, the writer makes on tokio's blocking pool ([`SqliteConn::commit_off_thread`]).
//!
//! The rest of Kassa still speaks sqlx: a [`SqliteConn`] takes sqlx's `Any`
//! arguments and answers with its rows and results, and reports SQLite's
//! errors as `sqlx::Error::Database` with the extended result code, as
//! sqlx's own driver does — so store code stays written once for both
//! backends, and values decode exactly as before (an integer is a `BigInt`,
//! a real a `Double`, by the value's storage class).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::types::{ToSqlOutput, ValueRef};
use sqlx::Either;
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx_core::any::{
    AnyArguments, AnyColumn, AnyQueryResult, AnyRow, AnyTypeInfo, AnyTypeInfoKind, AnyValue, AnyValueKind,
};
use sqlx_core::ext::ustr::UStr;

use super::Durability;
use super::conn::Home;

/// Prepared statements kept per connection: every statement Kassa runs
/// often, with room for the search's shapes.
const STATEMENT_CACHE: usize = 256;
/// Column-name maps kept per connection, keyed by statement text.
const COLUMN_CACHE: usize = 512;

/// How a connection is set up when it opens.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Whether a commit waits for the disk (`synchronous=FULL`) or not.
    pub(crate) synchronous: Durability,
    /// How long a statement waits inside SQLite for a lock another
    /// connection holds. It blocks the calling thread, so the writer keeps
    /// it short and retries asynchronously instead.
    pub(crate) busy_timeout: Duration,
    /// Page cache, in KiB.
    pub(crate) cache_kib: u32,
    /// Whether a commit may checkpoint the WAL itself (SQLite's default).
    /// The writer leaves checkpoints to [`super::checkpoint`], so a commit
    /// never waits for one.
    pub(crate) checkpoints: bool,
}

impl Settings {
    fn pragmas(&self) -> String {
        let synchronous = match self.synchronous {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        let autocheckpoint = if self.checkpoints { 1000 } else { 0 };
        format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;
             PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{}; PRAGMA wal_autocheckpoint = {autocheckpoint};",
            self.cache_kib
        )
    }
}

/// Which rows a caller wants back from a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// None: run every statement to its end and report what changed.
    Nothing,
    /// The first row only (the statement is not stepped further).
    FirstRow,
    /// Every row of every statement.
    AllRows,
}

/// What one query produced, in order: rows, then each statement's result.
pub(crate) type Produced = Vec<Either<AnyQueryResult, AnyRow>>;

type ColumnNames = sqlx_core::HashMap<UStr, usize>;

/// A statement's columns, shared by every row it returns.
#[derive(Clone)]
struct Columns {
    /// Name → position, as sqlx's rows look names up.
    by_name: Arc<ColumnNames>,
    /// The names in order.
    names: Arc<[UStr]>,
}

/// One open SQLite connection and its caches.
pub(crate) struct SqliteConn {
    /// `None` only while a commit runs off thread, or after a commit's
    /// thread was lost (the connection is then broken).
    conn: Option<rusqlite::Connection>,
    /// Column names per statement text, shared by every row it returns.
    names: HashMap<Box<str>, Columns>,
    /// The pool it goes back to when dropped, if it is a pooled connection.
    home: Option<Home>,
}

impl Drop for SqliteConn {
    fn drop(&mut self) {
        if let (Some(home), Some(conn)) = (self.home.take(), self.conn.take()) {
            home.give_back(SqliteConn { conn: Some(conn), names: std::mem::take(&mut self.names), home: None });
        }
    }
}

impl std::fmt::Debug for SqliteConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteConn").field("open", &self.conn.is_some()).finish()
    }
}

impl SqliteConn {
    /// Opens `file` (which must exist) with Kassa's pragmas.
    pub(crate) fn open(file: &Path, settings: &Settings) -> Result<SqliteConn, sqlx::Error> {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = rusqlite::Connection::open_with_flags(file, flags).map_err(to_sqlx)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.busy_timeout(settings.busy_timeout).map_err(to_sqlx)?;
        // Plans never depend on bound values: otherwise SQLite re-prepares
        // a statement each time a value it planned with is bound again (the
        // claim's `limit $5` did so on every claim).
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(to_sqlx)?;
        conn.execute_batch(&settings.pragmas()).map_err(to_sqlx)?;
        Ok(SqliteConn { conn: Some(conn), names: HashMap::new(), home: None })
    }

    fn conn(&self) -> Result<&rusqlite::Connection, sqlx::Error> {
        self.conn.as_ref().ok_or(sqlx::Error::WorkerCrashed)
    }

    /// Makes this a pooled connection, going back to `home` when dropped.
    pub(crate) fn set_home(&mut self, home: Home) {
        self.home = Some(home);
    }

    /// Whether the connection is usable (a commit's thread was not lost).
    pub(crate) fn is_open(&self) -> bool {
        self.conn.is_some()
    }

    /// Whether a transaction is open on this connection.
    pub(crate) fn in_transaction(&self) -> bool {
        self.conn.as_ref().is_some_and(|conn| !conn.is_autocommit())
    }

    /// Runs statements without arguments (transaction control, pragmas).
    pub(crate) fn batch(&self, sql: &str) -> Result<(), sqlx::Error> {
        self.conn()?.execute_batch(sql).map_err(to_sqlx)
    }

    /// Runs one statement without arguments or rows, kept prepared (the
    /// writer's `BEGIN IMMEDIATE`, savepoints and rollbacks).
    pub(crate) fn control(&self, sql: &str) -> Result<(), sqlx::Error> {
        self.conn()?.prepare_cached(sql).and_then(|mut statement| statement.raw_execute()).map(drop).map_err(to_sqlx)
    }

    /// Runs `sql` (one statement or several) with `args`, as sqlx would:
    /// `$N` and `?N` parameters take argument N, plain `?` the next one.
    pub(crate) fn run(
        &mut self,
        sql: &str,
        args: Option<AnyArguments>,
        persistent: bool,
        want: Want,
    ) -> Result<Produced, sqlx::Error> {
        let args = args.map(|args| args.values.0).unwrap_or_default();
        let SqliteConn { conn, names, .. } = self;
        let conn = conn.as_ref().ok_or(sqlx::Error::WorkerCrashed)?;
        let mut produced = Vec::new();
        let mut next_arg = 0;
        if persistent {
            match conn.prepare_cached(sql) {
                Ok(mut statement) => {
                    let columns = cached_names(names, sql, &statement);
                    step(&mut statement, &args, &mut next_arg, &columns, conn, want, &mut produced)?;
                    return Ok(produced);
                }
                Err(rusqlite::Error::MultipleStatement) => {}
                Err(error) => return Err(to_sqlx(error)),
            }
        }
        let mut statements = rusqlite::Batch::new(conn, sql);
        while let Some(mut statement) = statements.next().map_err(to_sqlx)? {
            let columns = names_of(&statement);
            let done = step(&mut statement, &args, &mut next_arg, &columns, conn, want, &mut produced)?;
            if done {
                break;
            }
        }
        Ok(produced)
    }

    /// Commits the open transaction. With `synchronous=FULL` the commit
    /// waits for an fsync, which may not hold up an async thread: it runs
    /// on tokio's blocking pool. With `NORMAL` a commit only appends to the
    /// WAL (no checkpoint either, see [`Settings::checkpoints`]) and runs here.
    pub(crate) async fn commit(&mut self, durability: Durability) -> Result<(), sqlx::Error> {
        match durability {
            Durability::Normal => self.control("COMMIT"),
            Durability::Full => self.commit_off_thread().await,
        }
    }

    async fn commit_off_thread(&mut self) -> Result<(), sqlx::Error> {
        let conn = self.conn.take().ok_or(sqlx::Error::WorkerCrashed)?;
        let (conn, committed) = tokio::task::spawn_blocking(move || {
            let committed = conn.execute_batch("COMMIT").map_err(to_sqlx);
            (conn, committed)
        })
        .await
        .map_err(|_| sqlx::Error::WorkerCrashed)?;
        self.conn = Some(conn);
        committed
    }
}

/// The column names of `statement`, from the cache when its text was seen.
fn cached_names(cache: &mut HashMap<Box<str>, Columns>, sql: &str, statement: &rusqlite::Statement<'_>) -> Columns {
    if let Some(names) = cache.get(sql) {
        return names.clone();
    }
    let names = names_of(statement);
    if cache.len() >= COLUMN_CACHE {
        cache.clear();
    }
    cache.insert(sql.into(), names.clone());
    names
}

fn names_of(statement: &rusqlite::Statement<'_>) -> Columns {
    let names: Vec<UStr> = statement.column_names().into_iter().map(UStr::new).collect();
    let by_name = names.iter().enumerate().map(|(index, name)| (name.clone(), index)).collect();
    Columns { by_name: Arc::new(by_name), names: names.into() }
}

/// Binds `args` to one statement and steps it, appending what it produced.
/// True when the caller has what it wanted and later statements are skipped.
fn step(
    statement: &mut rusqlite::Statement<'_>,
    args: &[AnyValueKind],
    next_arg: &mut usize,
    columns: &Columns,
    conn: &rusqlite::Connection,
    want: Want,
    produced: &mut Produced,
) -> Result<bool, sqlx::Error> {
    for index in 1..=statement.parameter_count() {
        let position = match statement.parameter_name(index).and_then(numbered) {
            Some(number) => number,
            None => {
                *next_arg += 1;
                *next_arg
            }
        };
        let value = args.get(position.wrapping_sub(1)).ok_or_else(|| {
            sqlx::Error::Protocol(format!("the statement needs argument {position}; {} given", args.len()))
        })?;
        statement.raw_bind_parameter(index, bindable(value)?).map_err(to_sqlx)?;
    }
    let readonly = statement.readonly();
    let mut rows = statement.raw_query();
    while let Some(row) = rows.next().map_err(to_sqlx)? {
        if want == Want::Nothing {
            continue;
        }
        produced.push(Either::Right(any_row(row, columns)?));
        if want == Want::FirstRow {
            return Ok(true);
        }
    }
    drop(rows);
    let rows_affected = if readonly { 0 } else { conn.changes() };
    produced.push(Either::Left(AnyQueryResult { rows_affected, last_insert_id: None }));
    Ok(false)
}

/// The argument number of a `$N` or `?N` parameter.
fn numbered(name: &str) -> Option<usize> {
    name.strip_prefix(['$', '?']).and_then(|digits| digits.parse().ok())
}

/// An sqlx argument as SQLite binds it (booleans are integers).
fn bindable(value: &AnyValueKind) -> Result<ToSqlOutput<'_>, sqlx::Error> {
    Ok(ToSqlOutput::Borrowed(match value {
        AnyValueKind::Null(_) => ValueRef::Null,
        AnyValueKind::Bool(b) => ValueRef::Integer(i64::from(*b)),
        AnyValueKind::SmallInt(i) => ValueRef::Integer(i64::from(*i)),
        AnyValueKind::Integer(i) => ValueRef::Integer(i64::from(*i)),
        AnyValueKind::BigInt(i) => ValueRef::Integer(*i),
        AnyValueKind::Real(r) => ValueRef::Real(f64::from(*r)),
        AnyValueKind::Double(d) => ValueRef::Real(*d),
        AnyValueKind::Text(text) => ValueRef::Text(text.as_bytes()),
        AnyValueKind::TextSlice(text) => ValueRef::Text(text.as_bytes()),
        AnyValueKind::Blob(blob) => ValueRef::Blob(blob),
        other => return Err(sqlx::Error::Protocol(format!("cannot bind {other:?} to an SQLite statement"))),
    }))
}

/// One row as sqlx's `Any` driver gives it: each value typed by its
/// storage class, as sqlx's SQLite driver maps them.
fn any_row(row: &rusqlite::Row<'_>, columns: &Columns) -> Result<AnyRow, sqlx::Error> {
    let count = columns.names.len();
    let mut out = AnyRow {
        column_names: columns.by_name.clone(),
        columns: Vec::with_capacity(count),
        values: Vec::with_capacity(count),
    };
    for (ordinal, name) in columns.names.iter().enumerate() {
        let (kind, value) = match row.get_ref(ordinal).map_err(to_sqlx)? {
            ValueRef::Null => (AnyTypeInfoKind::Null, AnyValueKind::Null(AnyTypeInfoKind::Null)),
            ValueRef::Integer(i) => (AnyTypeInfoKind::BigInt, AnyValueKind::BigInt(i)),
            ValueRef::Real(r) => (AnyTypeInfoKind::Double, AnyValueKind::Double(r)),
            ValueRef::Text(bytes) => {
                let text = String::from_utf8(bytes.to_vec()).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                (AnyTypeInfoKind::Text, AnyValueKind::Text(Arc::new(text)))
            }
            ValueRef::Blob(bytes) => (AnyTypeInfoKind::Blob, AnyValueKind::Blob(Arc::new(bytes.to_vec()))),
        };
        out.columns.push(AnyColumn { ordinal, name: name.clone(), type_info: AnyTypeInfo { kind } });
        out.values.push(AnyValue { kind: value });
    }
    Ok(out)
}

/// An SQLite error as sqlx reports database errors.
pub(crate) fn to_sqlx(error: rusqlite::Error) -> sqlx::Error {
    match error {
        rusqlite::Error::SqliteFailure(failure, message) => sqlx::Error::Database(Box::new(SqliteError {
            code: failure.extended_code,
            message: message.unwrap_or_else(|| failure.to_string()),
        })),
        rusqlite::Error::Utf8Error(_, e) => sqlx::Error::Decode(Box::new(e)),
        other => sqlx::Error::Protocol(format!("SQLite: {other}")),
    }
}

/// A database error from SQLite, with its extended result code.
#[derive(Debug)]
pub(crate) struct SqliteError {
    code: i32,
    message: String,
}

impl std::fmt::Display for SqliteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SqliteError {}

impl DatabaseError for SqliteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        use rusqlite::ffi;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => ErrorKind::UniqueViolation,
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;
    use crate::db::DbConn;

    fn settings() -> Settings {
        Settings {
            synchronous: Durability::Normal,
            busy_timeout: Duration::from_millis(10),
            cache_kib: 256,
            checkpoints: true,
        }
    }

    fn open(dir: &tempfile::TempDir) -> DbConn {
        let file = dir.path().join("t.db");
        std::fs::File::create(&file).expect("file");
        DbConn::sqlite(SqliteConn::open(&file, &settings()).expect("open"))
    }

    #[tokio::test]
    async fn values_decode_as_sqlx_sqlite_driver_gives_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open(&dir);
        let row = sqlx::query("select $1 as n, $2 as t, $3 as r, $4 as missing, $5 as b, x'00ff' as blob")
            .bind(42_i64)
            .bind("héllo")
            .bind(1.5_f64)
            .bind(None::<i64>)
            .bind(true)
            .fetch_one(&mut conn)
            .await
            .expect("row");
        assert_eq!(row.try_get::<i64, _>("n").expect("n"), 42);
        assert_eq!(row.try_get::<i32, _>("n").expect("n as i32"), 42);
        assert_eq!(row.try_get::<String, _>("t").expect("t"), "héllo");
        assert_eq!(row.try_get::<f64, _>("r").expect("r"), 1.5);
        assert_eq!(row.try_get::<Option<String>, _>("missing").expect("null"), None);
        assert_eq!(row.try_get::<i64, _>("b").expect("a bound bool is an integer"), 1);
        assert_eq!(row.try_get::<Vec<u8>, _>("blob").expect("blob"), vec![0, 255]);
        assert!(row.try_get::<String, _>("n").is_err(), "an integer is not text");
        assert!(matches!(row.try_get::<i64, _>("nope"), Err(sqlx::Error::ColumnNotFound(_))));
    }

    #[tokio::test]
    async fn numbered_parameters_may_repeat_and_several_statements_share_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open(&dir);
        sqlx::raw_sql("create table t (a integer, b integer)").execute(&mut conn).await.expect("table");
        let done =
            sqlx::query("insert into t values ($1, $2); insert into t values ($2, $1); insert into t values ($1, $1)")
                .bind(7_i64)
                .bind(9_i64)
                .execute(&mut conn)
                .await
                .expect("inserts");
        assert_eq!(done.rows_affected(), 3, "one row per statement, summed");
        let rows: Vec<(i64, i64)> =
            sqlx::query_as("select a, b from t order by rowid").fetch_all(&mut conn).await.expect("rows");
        assert_eq!(rows, [(7, 9), (9, 7), (7, 7)]);
        let missing = sqlx::query("select $2").bind(1_i64).fetch_one(&mut conn).await.err();
        assert!(matches!(missing, Some(sqlx::Error::Protocol(_))), "{missing:?}");
    }

    #[tokio::test]
    async fn a_read_reports_no_changes_and_returning_rows_count_as_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open(&dir);
        sqlx::raw_sql("create table t (a integer); insert into t values (1), (2), (3)")
            .execute(&mut conn)
            .await
            .expect("table");
        let read = sqlx::query("select a from t").execute(&mut conn).await.expect("read");
        assert_eq!(read.rows_affected(), 0, "not the previous insert's count");
        let first: i64 = sqlx::query_scalar("update t set a = a + 10 where a >= 2 returning a")
            .fetch_one(&mut conn)
            .await
            .expect("first returned row");
        assert!(first == 12 || first == 13, "{first}");
        let total: i64 = sqlx::query_scalar("select sum(a) from t").fetch_one(&mut conn).await.expect("sum");
        assert_eq!(total, 1 + 12 + 13, "the update ran to its end though one row was taken");
    }

    #[tokio::test]
    async fn errors_carry_sqlite_extended_codes_and_kinds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open(&dir);
        sqlx::raw_sql("create table t (a integer primary key, b text not null unique)")
            .execute(&mut conn)
            .await
            .expect("table");
        sqlx::query("insert into t (b) values ('x')").execute(&mut conn).await.expect("first");
        let duplicate = sqlx::query("insert into t (b) values ('x')").execute(&mut conn).await.expect_err("unique");
        assert!(crate::db::is_unique_violation(&duplicate), "{duplicate:?}");
        let sqlx::Error::Database(error) = &duplicate else { panic!("{duplicate:?}") };
        assert_eq!(error.code().as_deref(), Some("2067"), "SQLITE_CONSTRAINT_UNIQUE");
        let syntax = sqlx::query("selec 1").execute(&mut conn).await.expect_err("syntax");
        assert!(matches!(syntax, sqlx::Error::Database(_)) && !crate::db::is_busy(&syntax));
    }

    #[tokio::test]
    async fn a_write_lock_held_elsewhere_is_reported_busy_after_the_short_timeout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open(&dir);
        sqlx::raw_sql("create table t (a integer)").execute(&mut conn).await.expect("table");
        let other = rusqlite::Connection::open(dir.path().join("t.db")).expect("other");
        other.execute_batch("BEGIN IMMEDIATE; insert into t values (1)").expect("other holds the lock");
        let started = std::time::Instant::now();
        let busy = sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut conn).await.expect_err("busy");
        assert!(crate::db::is_busy(&busy), "{busy:?}");
        assert!(started.elapsed() < Duration::from_secs(1), "waited {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn plans_never_depend_on_bound_values_so_statements_are_not_prepared_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conn = open(&dir);
        sqlx::raw_sql("create table t (a integer); insert into t values (1), (2), (3)")
            .execute(&mut conn)
            .await
            .expect("table");
        let sql = "select a from t order by a limit $1";
        for limit in [1_i64, 2, 3, 1] {
            let rows = sqlx::query(sql).bind(limit).fetch_all(&mut conn).await.expect("rows");
            assert_eq!(rows.len() as i64, limit);
        }
        let sqlite = conn.as_sqlite().expect("sqlite");
        let statement = sqlite.conn().expect("open").prepare_cached(sql).expect("cached");
        assert_eq!(
            statement.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "binding a new limit made SQLite prepare the statement again"
        );
    }
}
