//! WAL checkpoints on a thread of their own.
//!
//! By default SQLite checkpoints inside the commit that grows the WAL past
//! 1,000 pages: that commit copies pages into the database file and syncs
//! it while the units of its group, and every group behind it, wait. The
//! writer's connection turns that off; this thread checkpoints instead,
//! shortly after commits: a `PASSIVE` checkpoint, which takes no lock a
//! writer or reader needs and copies what no reader still reads. Once a
//! checkpoint has copied the whole WAL, the next commit starts the WAL over
//! from its beginning, so it stays small as before.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::sqlite_conn::{Settings, SqliteConn};

/// How long commits gather before a checkpoint copies them.
const GATHER: Duration = Duration::from_millis(50);

/// The handle the writer nudges after each commit.
pub(super) struct Checkpointer {
    commits: SyncSender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Starts the thread, which opens its own connection to `file`.
    pub(super) fn start(file: PathBuf, settings: Settings) -> std::io::Result<Checkpointer> {
        let (commits, committed) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("kassa-checkpoint".into())
            .spawn(move || run(&file, &settings, &committed))?;
        Ok(Checkpointer { commits, thread })
    }

    /// Tells the checkpointer that a commit added to the WAL.
    pub(super) fn committed(&self) {
        // A nudge already waiting covers this commit too.
        let _ = self.commits.try_send(());
    }

    /// Makes a last checkpoint if commits are waiting for one, and stops
    /// the thread (blocking until it has).
    pub(super) fn stop(self) {
        drop(self.commits);
        let _ = self.thread.join();
    }
}

fn run(file: &std::path::Path, settings: &Settings, committed: &Receiver<()>) {
    let mut conn = None;
    // Each nudge waits in the channel (one at most) until the checkpoint
    // after it: under steady writes, one checkpoint per `GATHER`.
    while committed.recv().is_ok() {
        std::thread::sleep(GATHER);
        let opened = match conn.take() {
            Some(opened) => opened,
            None => match SqliteConn::open(file, settings) {
                Ok(opened) => opened,
                Err(error) => {
                    tracing::warn!(%error, "the checkpointer cannot open the database; retrying after the next commit");
                    continue;
                }
            },
        };
        match opened.batch("PRAGMA wal_checkpoint(PASSIVE)") {
            Ok(()) => conn = Some(opened),
            // Another process's checkpointer is at it.
            Err(error) if super::is_busy(&error) => conn = Some(opened),
            Err(error) => tracing::warn!(%error, "WAL checkpoint failed; retrying after the next commit"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::db::{DbArgs, Durability};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_leave_the_wal_to_the_checkpointer_which_copies_it_into_the_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = DbArgs::in_dir(dir.path(), Durability::Normal).open().await.expect("db");
        let autocheckpoint: i64 = db
            .write(|tx| Box::pin(async move { sqlx::query_scalar("pragma wal_autocheckpoint").fetch_one(tx).await }))
            .await
            .expect("pragma");
        assert_eq!(autocheckpoint, 0, "the writer's commits never checkpoint");
        db.write(|tx| {
            Box::pin(async move { sqlx::raw_sql("create table blobs (b blob)").execute(tx).await.map(drop) })
        })
        .await
        .expect("table");
        // 4 MiB in 64 commits: far past the 1,000 pages SQLite would checkpoint at.
        for _ in 0..64 {
            db.write(|tx| {
                Box::pin(async move {
                    sqlx::query("insert into blobs values (randomblob(65536))").execute(tx).await.map(drop)
                })
            })
            .await
            .expect("insert");
        }
        let file = dir.path().join("kassa.db");
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::metadata(&file).expect("database file").len() < 4 << 20 {
            assert!(Instant::now() < deadline, "the WAL was never copied into the database file");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        db.close().await;
    }
}
