//! Taking turns at SQLite's write lock between Kassa processes.
//!
//! SQLite's own lock is not a queue: a writer that finds it taken sleeps in
//! the busy handler (1 ms, then 2, 5, 10 … ms) and tries again, so while an
//! API and a worker process both write, the lock often sits free while both
//! sleep, and the process that just committed usually takes it straight
//! back. Each process's writer therefore takes an advisory file lock
//! (`flock`) beside the database before `BEGIN IMMEDIATE` and drops it after
//! the commit. A waiting writer blocks in `flock` on a thread of its own,
//! so the kernel hands it the lock the moment the holder lets go (polling
//! every 20–200 µs left the lock free for about 0.1 ms per hand-over, and
//! with three writing processes more than one worker was slower than one).
//!
//! A second file is a turnstile: a writer holds it while it waits for the
//! lock, and one that has just committed must pass it again before taking
//! the lock back, so a waiting process gets the next turn instead of
//! watching the other commit group after group (its heartbeats and acks
//! would be starved past their leases).
//!
//! Writers that are not Kassa's (the `sqlite3` shell, another tool) are
//! still handled by SQLite's busy handling; a lost file lock (the holder
//! died) is released by the kernel.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The lock and turnstile files of one database; cheap to clone.
#[derive(Clone)]
pub(super) struct ProcessLock {
    files: Arc<Files>,
}

struct Files {
    lock: File,
    turnstile: File,
    /// A thread is blocked waiting for the lock (one whose wait was
    /// abandoned, if nobody waits for it now).
    waiting: AtomicBool,
}

/// Why the lock was not taken.
#[derive(Debug)]
pub(super) enum LockFailure {
    /// Another process held it for longer than the patience given.
    TimedOut,
    /// The files cannot be locked at all (e.g. a file system without
    /// `flock`); the writer goes on with SQLite's busy handling alone.
    Unsupported(std::io::Error),
}

impl ProcessLock {
    /// Opens (creating, private to the owner) `<database>-writer` and
    /// `<database>-writer-turnstile`.
    pub(super) fn open(database: &Path) -> std::io::Result<ProcessLock> {
        let open = |suffix: &str| {
            let mut path = database.as_os_str().to_owned();
            path.push(suffix);
            OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(path)
        };
        let files =
            Files { lock: open("-writer")?, turnstile: open("-writer-turnstile")?, waiting: AtomicBool::new(false) };
        Ok(ProcessLock { files: Arc::new(files) })
    }

    /// Waits for this process's turn at the write lock, at most `patience`.
    /// A free lock is taken at once; a taken one is waited for on a
    /// blocking thread, which the kernel wakes when the lock is let go. A
    /// wait that outlives `patience` is abandoned: its thread lets go of
    /// the lock as soon as it gets it. While such a thread still waits
    /// (another process has held the lock for longer than `patience`),
    /// later calls look every millisecond instead of blocking another
    /// thread, so a stuck process never piles up blocked threads here.
    pub(super) async fn acquire(&self, patience: Duration) -> Result<Held, LockFailure> {
        match self.try_acquire() {
            Err(LockFailure::TimedOut) => {}
            taken_or_unsupported => return taken_or_unsupported,
        }
        if self.files.waiting.load(Ordering::SeqCst) {
            let deadline = tokio::time::Instant::now() + patience;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
                match self.try_acquire() {
                    Err(LockFailure::TimedOut) => {}
                    taken_or_unsupported => return taken_or_unsupported,
                }
            }
            return Err(LockFailure::TimedOut);
        }
        let abandoned = Arc::new(AtomicBool::new(false));
        let lock = self.clone();
        let waiting = tokio::task::spawn_blocking({
            let abandoned = abandoned.clone();
            move || lock.acquire_waiting(&abandoned)
        });
        match tokio::time::timeout(patience, waiting).await {
            Ok(Ok(taken)) => taken,
            Ok(Err(_)) => Err(LockFailure::TimedOut),
            Err(_) => {
                abandoned.store(true, Ordering::SeqCst);
                Err(LockFailure::TimedOut)
            }
        }
    }

    /// One look at each file: the lock if nobody holds it or waits for it.
    fn try_acquire(&self) -> Result<Held, LockFailure> {
        try_take(&self.files.turnstile)?;
        let taken = try_take(&self.files.lock);
        let _ = self.files.turnstile.unlock();
        taken?;
        Ok(Held { lock: self.clone() })
    }

    /// Waits at the turnstile, then for the lock, blocking the thread.
    fn acquire_waiting(&self, abandoned: &AtomicBool) -> Result<Held, LockFailure> {
        self.files.waiting.store(true, Ordering::SeqCst);
        let taken = self.wait_for_turn(abandoned);
        self.files.waiting.store(false, Ordering::SeqCst);
        taken
    }

    fn wait_for_turn(&self, abandoned: &AtomicBool) -> Result<Held, LockFailure> {
        self.files.turnstile.lock().map_err(LockFailure::Unsupported)?;
        let taken = self.files.lock.lock();
        let _ = self.files.turnstile.unlock();
        taken.map_err(LockFailure::Unsupported)?;
        let held = Held { lock: self.clone() };
        if abandoned.load(Ordering::SeqCst) {
            return Err(LockFailure::TimedOut);
        }
        Ok(held)
    }
}

/// The write lock while this process holds it; dropping it lets go.
pub(super) struct Held {
    lock: ProcessLock,
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.lock.files.lock.unlock();
    }
}

/// Takes `file`'s lock if it is free.
fn try_take(file: &File) -> Result<(), LockFailure> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(LockFailure::TimedOut),
        Err(TryLockError::Error(error)) => Err(LockFailure::Unsupported(error)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_across_open_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = dir.path().join("kassa.db");
        let (first, second) =
            (ProcessLock::open(&database).expect("open"), ProcessLock::open(&database).expect("open"));
        let held = first.acquire(Duration::from_secs(1)).await.expect("free at first");
        assert!(
            matches!(second.acquire(Duration::from_millis(20)).await, Err(LockFailure::TimedOut)),
            "a second open file (as another process has) waits while the first holds it"
        );
        drop(held);
        second.acquire(Duration::from_secs(1)).await.expect("free once let go");
    }

    #[tokio::test]
    async fn waits_after_an_abandoned_one_still_time_out_and_succeed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = dir.path().join("kassa.db");
        let (first, second) =
            (ProcessLock::open(&database).expect("open"), ProcessLock::open(&database).expect("open"));
        let held = first.acquire(Duration::from_secs(1)).await.expect("free at first");
        let patience = Duration::from_millis(20);
        assert!(matches!(second.acquire(patience).await, Err(LockFailure::TimedOut)), "abandoned");
        assert!(second.files.waiting.load(Ordering::SeqCst), "the abandoned wait's thread still waits");
        let started = std::time::Instant::now();
        assert!(matches!(second.acquire(patience).await, Err(LockFailure::TimedOut)), "looks, does not block");
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        drop(held);
        second.acquire(Duration::from_secs(5)).await.expect("the lock once let go");
    }

    #[test]
    fn a_waiting_writer_gets_the_next_turn() {
        // One thread commits in a tight loop; another wants the lock once.
        // Without the turnstile the first would take it straight back
        // nearly every time; with it, the waiter gets in after one turn.
        let dir = tempfile::tempdir().expect("tempdir");
        let database = dir.path().join("kassa.db");
        let busy = Arc::new(ProcessLock::open(&database).expect("open"));
        let stop = Arc::new(AtomicBool::new(false));
        let turns = Arc::new(AtomicUsize::new(0));
        let looping = std::thread::spawn({
            let (busy, stop, turns) = (busy.clone(), stop.clone(), turns.clone());
            move || {
                while !stop.load(Ordering::SeqCst) {
                    let held = busy.acquire_waiting(&AtomicBool::new(false)).expect("turn");
                    turns.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(2));
                    drop(held);
                }
            }
        });
        while turns.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        let waiter = ProcessLock::open(&database).expect("open");
        let before = turns.load(Ordering::SeqCst);
        let held = waiter.acquire_waiting(&AtomicBool::new(false)).expect("the waiter's turn");
        let waited_turns = turns.load(Ordering::SeqCst) - before;
        drop(held);
        stop.store(true, Ordering::SeqCst);
        looping.join().expect("join");
        assert!(waited_turns <= 2, "the waiter got in after {waited_turns} of the other's turns");
    }

    #[test]
    fn the_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let database = dir.path().join("kassa.db");
        ProcessLock::open(&database).expect("open");
        for name in ["kassa.db-writer", "kassa.db-writer-turnstile"] {
            let mode = std::fs::metadata(dir.path().join(name)).expect(name).permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
        }
    }
}
