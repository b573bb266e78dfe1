//! The SQLite file: where it is, how it is created (mode 0600, so the WAL
//! and shared-memory files SQLite creates beside it get the same mode), and
//! the pragmas every connection runs with.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::any::AnyConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use super::sqlite_conn::Settings;
use super::{DbError, Durability};

/// The file a `sqlite:` URL names.
pub(super) fn file_of(url: &str) -> Result<PathBuf, DbError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| DbError::InvalidUrl { url: url.to_owned(), reason: e.to_string() })?;
    let file = options.get_filename().to_path_buf();
    if file.as_os_str().is_empty() || file.to_string_lossy().contains("sqlx-in-memory") {
        return Err(DbError::InvalidUrl { url: url.to_owned(), reason: "Kassa needs a database file".into() });
    }
    Ok(file)
}

/// Creates the database file (and its directory) readable by its owner
/// only, unless it exists. SQLite gives its `-wal` and `-shm` files the
/// database file's permissions.
pub(super) fn create_file(file: &Path) -> Result<(), DbError> {
    if let Some(parent) = file.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|source| DbError::CreateFile { path: parent.to_path_buf(), source })?;
    }
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(DbError::CreateFile { path: file.to_path_buf(), source }),
    }
}

/// Options for sqlx's `Any` driver opening `file` read-write.
pub(super) fn any_options(file: &Path) -> Result<AnyConnectOptions, DbError> {
    let url = SqliteConnectOptions::new().filename(file).to_url_lossy();
    AnyConnectOptions::from_str(url.as_str())
        .map_err(|e| DbError::InvalidUrl { url: file.display().to_string(), reason: e.to_string() })
}

/// Page cache of each reading connection, in KiB: a miss is a read from
/// the OS's page cache, which every connection shares. Statements run on
/// the calling thread, so only about as many readers as runtime threads
/// are busy at once, and the pool hands out the most recently used one
/// first: a few connections stay hot and the rest keep their caches empty.
/// 2 MiB each held a search mix over 10,000 products with a quarter fewer
/// reads from the OS than 1 MiB, without raising the API's peak memory.
const READER_CACHE_KIB: u32 = 2048;
/// Page cache of the writer, in KiB: the pages it touches are the right
/// edges of tables and indexes that grow, and a few hot rows.
const WRITER_CACHE_KIB: u32 = 2048;
/// Page cache of the checkpointer, which copies pages without reading them, in KiB.
const CHECKPOINTER_CACHE_KIB: u32 = 256;
/// The longest the writer's statements wait inside SQLite for a lock held
/// by another connection: the wait blocks its thread, so the writer waits
/// briefly and then retries asynchronously (and processes of Kassa take
/// turns through the process lock before they ask).
const WRITER_BUSY_TIMEOUT: Duration = Duration::from_millis(10);

/// The pragmas each connection runs right after it opens.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pragmas {
    synchronous: Durability,
    busy_timeout_ms: u64,
}

impl Pragmas {
    pub(super) fn new(synchronous: Durability, busy_timeout_ms: u64) -> Pragmas {
        Pragmas { synchronous, busy_timeout_ms }
    }

    fn synchronous(self) -> &'static str {
        match self.synchronous {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }

    /// How reading connections open.
    pub(super) fn reader(self) -> Settings {
        Settings {
            synchronous: self.synchronous,
            busy_timeout: Duration::from_millis(self.busy_timeout_ms),
            cache_kib: READER_CACHE_KIB,
            checkpoints: true,
        }
    }

    /// How the writer's connection opens.
    pub(super) fn writer(self) -> Settings {
        Settings {
            synchronous: self.synchronous,
            busy_timeout: WRITER_BUSY_TIMEOUT.min(Duration::from_millis(self.busy_timeout_ms)),
            cache_kib: WRITER_CACHE_KIB,
            checkpoints: false,
        }
    }

    /// How the checkpointer's connection opens.
    pub(super) fn checkpointer(self) -> Settings {
        Settings { cache_kib: CHECKPOINTER_CACHE_KIB, ..self.reader() }
    }

    /// Sets up a connection of sqlx's own driver (the migrations') the same way.
    pub(super) async fn apply(self, conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
        let sql = format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = {}; PRAGMA temp_store = MEMORY;",
            self.synchronous(),
            self.busy_timeout_ms
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn urls_name_relative_and_absolute_files() {
        assert_eq!(file_of("sqlite://rel/kassa.db").expect("valid"), PathBuf::from("rel/kassa.db"));
        assert_eq!(file_of("sqlite:///abs/kassa.db").expect("valid"), PathBuf::from("/abs/kassa.db"));
        assert!(file_of("sqlite::memory:").is_err());
    }

    #[tokio::test]
    async fn readers_and_the_writer_keep_the_configured_page_caches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = super::super::DbArgs::in_dir(dir.path(), Durability::Normal).open().await.expect("db");
        let writer: i64 = db
            .write(|tx| Box::pin(async move { sqlx::query_scalar("pragma cache_size").fetch_one(tx).await }))
            .await
            .expect("writer's cache");
        let reader: i64 = sqlx::query_scalar("pragma cache_size").fetch_one(db.pool()).await.expect("reader's cache");
        assert_eq!((writer, reader), (-2048, -2048), "cache sizes in KiB, negated");
        db.close().await;
    }

    #[tokio::test]
    async fn the_database_and_its_wal_and_shm_files_are_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = super::super::DbArgs::in_dir(dir.path(), Durability::Normal).open().await.expect("db");
        db.write(|tx| Box::pin(async move { sqlx::query("create table t (x integer)").execute(tx).await.map(drop) }))
            .await
            .expect("write");
        for name in ["kassa.db", "kassa.db-wal", "kassa.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name)).expect(name).permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
        }
        db.close().await;
    }
}
