//! Waking idle workers without long sleeps.
//!
//! In one process, a push (or a rescue, a release, a re-queue) notifies the
//! process-wide [`notify_pushed`] signal and idle workers claim at once.
//! Across processes there is no such signal on SQLite, so idle workers poll
//! with a cheap read that backs off while idle and resets when work is found
//! ([`AdaptivePoll`]). A PostgreSQL store would use `LISTEN/NOTIFY` instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

static PUSHED: Notify = Notify::const_new();
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Tells idle workers in this process that there may be work.
pub fn notify_pushed() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
    PUSHED.notify_waiters();
}

/// A counter that moves on every [`notify_pushed`]; read it before looking
/// for work and compare afterwards, so a push in between is never missed.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

/// Waits until [`notify_pushed`] is called after `seen_generation` was read
/// (returns at once if it already was).
pub async fn pushed_since(seen_generation: u64) {
    let notified = PUSHED.notified();
    tokio::pin!(notified);
    // Register before checking the counter, so a push in between wakes us.
    notified.as_mut().enable();
    if generation() != seen_generation {
        return;
    }
    notified.await;
}

/// Poll delays for an idle worker: start short, grow by half each idle
/// round up to a ceiling, and start short again when work is found.
#[derive(Clone, Debug)]
pub struct AdaptivePoll {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl AdaptivePoll {
    /// Delays from `min` growing to `max`.
    pub fn new(min: Duration, max: Duration) -> AdaptivePoll {
        let max = max.max(min);
        AdaptivePoll { min, max, next: min }
    }

    /// The delay before the next look, and grows the one after.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next + self.next / 2).clamp(self.min, self.max);
        delay
    }

    /// Work was found: look again soon.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_backs_off_to_the_ceiling_and_resets() {
        let mut poll = AdaptivePoll::new(Duration::from_millis(4), Duration::from_millis(20));
        let delays: Vec<_> = (0..8).map(|_| poll.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![4, 6, 9, 13, 20, 20, 20, 20]);
        poll.reset();
        assert_eq!(poll.next_delay(), Duration::from_millis(4));
    }

    #[tokio::test]
    async fn a_push_after_reading_the_generation_is_not_missed() {
        let seen = generation();
        notify_pushed();
        tokio::time::timeout(Duration::from_secs(1), pushed_since(seen)).await.expect("returns at once");
    }
}
