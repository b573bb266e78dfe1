//! What each open connection is doing, and the set of them: the deadline a
//! connection's phase allows, and which connection makes way when the cap is
//! reached.
//!
//! A connection is in one of four phases. Waiting for a request's head
//! (from accept, or from the first byte of a later request) is bounded by
//! the header timeout, waiting between requests by the idle timeout; a body
//! being received is bounded by the body timeout (enforced on the body
//! itself, so the client gets a 408). Only a connection whose request is
//! being handled has no deadline and cannot be displaced: that is real work.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::HttpLimits;

/// What a connection is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's head to be complete.
    AwaitingHead,
    /// Kept alive between requests, nothing received yet.
    Idle,
    /// A request's head is in; its body is still arriving.
    ReceivingBody,
    /// A request is being handled or its response written.
    Handling,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    since: Instant,
    requests_in_flight: u32,
}

/// Why a connection was closed by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// Its request's head did not arrive in time.
    HeaderTimeout,
    /// It stayed idle between requests for too long.
    IdleTimeout,
    /// It made way for a new connection at the cap.
    Displaced,
}

impl Closed {
    /// The `reason` label of `kassa_http_connections_closed_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::Displaced => "displaced",
        }
    }
}

/// One connection's phase, shared by its socket, its requests and its task.
#[derive(Debug)]
pub struct Tracker {
    id: u64,
    state: Mutex<State>,
    displaced: AtomicBool,
    /// Wakes the connection's task: a new deadline, or displacement.
    wake: Notify,
}

impl Tracker {
    fn new(id: u64) -> Self {
        Self {
            id,
            state: Mutex::new(State { phase: Phase::AwaitingHead, since: Instant::now(), requests_in_flight: 0 }),
            displaced: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived: on an idle connection they start a request's head,
    /// whose deadline is the header timeout from now.
    pub fn received_bytes(&self) {
        let mut state = self.state();
        if state.phase == Phase::Idle {
            state.phase = Phase::AwaitingHead;
            state.since = Instant::now();
            drop(state);
            self.wake.notify_one();
        }
    }

    /// A request's head is complete; `has_body` if a body follows.
    pub fn request_started(&self, has_body: bool) {
        let mut state = self.state();
        state.phase = if has_body { Phase::ReceivingBody } else { Phase::Handling };
        state.since = Instant::now();
        state.requests_in_flight += 1;
    }

    /// The request's body has been read to its end (or abandoned).
    pub fn body_finished(&self) {
        let mut state = self.state();
        if state.phase == Phase::ReceivingBody {
            state.phase = Phase::Handling;
        }
    }

    /// A response has been written (or dropped); with none left in flight
    /// the connection is idle from now.
    pub fn request_finished(&self) {
        let mut state = self.state();
        state.requests_in_flight = state.requests_in_flight.saturating_sub(1);
        if state.requests_in_flight == 0 {
            state.phase = Phase::Idle;
            state.since = Instant::now();
            drop(state);
            self.wake.notify_one();
        }
    }

    /// When this connection must be closed if nothing changes, and why.
    pub fn deadline(&self, limits: &HttpLimits) -> Option<(Instant, Closed)> {
        let state = self.state();
        match state.phase {
            Phase::AwaitingHead => Some((state.since + limits.header_timeout, Closed::HeaderTimeout)),
            Phase::Idle => Some((state.since + limits.idle_timeout, Closed::IdleTimeout)),
            Phase::ReceivingBody | Phase::Handling => None,
        }
    }

    /// Whether this connection was told to make way.
    pub fn is_displaced(&self) -> bool {
        self.displaced.load(Ordering::Acquire)
    }

    /// Resolves when the deadline may have changed or the connection was
    /// displaced.
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    /// Whether this connection is only waiting on its client and could
    /// make way: not while a request is being handled.
    fn is_waiting_on_client(&self) -> bool {
        self.state().phase != Phase::Handling
    }
}

/// The open connections, and the cap on them. A displaced connection is
/// no candidate any more but still holds its socket until its task has
/// closed it, so the cap counts sockets, not candidates: otherwise a flood
/// of slow connections would be accepted faster than the displaced ones
/// close, and run the process out of file descriptors.
#[derive(Debug)]
pub struct Connections {
    max: usize,
    /// Open connections not told to make way, in accept order.
    live: Mutex<BTreeMap<u64, Arc<Tracker>>>,
    /// Connections whose socket is still open, displaced ones included.
    sockets: watch::Sender<usize>,
    next_id: AtomicU64,
}

impl Connections {
    /// No connections yet; at most `max` at once.
    pub fn new(max: usize) -> Self {
        Self { max, live: Mutex::new(BTreeMap::new()), sockets: watch::Sender::new(0), next_id: AtomicU64::new(0) }
    }

    fn live(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Tracker>>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count_sockets(&self, change: impl FnOnce(&mut usize)) {
        self.sockets.send_modify(change);
        metrics::gauge!("kassa_http_connections").set(*self.sockets.borrow() as f64);
    }

    /// Registers a new connection.
    pub fn open(&self) -> Arc<Tracker> {
        let tracker = Arc::new(Tracker::new(self.next_id.fetch_add(1, Ordering::Relaxed)));
        self.live().insert(tracker.id, Arc::clone(&tracker));
        self.count_sockets(|n| *n += 1);
        tracker
    }

    /// Forgets a connection whose socket its task has closed.
    pub fn close(&self, tracker: &Tracker) {
        self.live().remove(&tracker.id);
        self.count_sockets(|n| *n = n.saturating_sub(1));
    }

    /// Whether the cap is reached.
    pub fn is_full(&self) -> bool {
        *self.sockets.borrow() >= self.max
    }

    /// Whether a displaced connection's socket is still open.
    pub fn is_closing_one(&self) -> bool {
        *self.sockets.borrow() > self.live().len()
    }

    /// Whether some connection could make way: one that is only waiting
    /// on its client, not handling a request.
    pub fn can_make_way(&self) -> bool {
        self.live().values().any(|t| t.is_waiting_on_client())
    }

    /// Tells the oldest connection that is only waiting on its client
    /// (idle, or sending its head or body) to close. `false` if every
    /// connection is handling a request. Connections are kept in accept
    /// order, so under a flood of slow connections the first candidate is
    /// found at once.
    pub fn displace_oldest(&self) -> bool {
        let oldest = {
            let mut live = self.live();
            let oldest = live.values().find(|t| t.is_waiting_on_client()).map(|t| t.id);
            oldest.and_then(|id| live.remove(&id))
        };
        match oldest {
            Some(tracker) => {
                tracker.displaced.store(true, Ordering::Release);
                tracker.wake.notify_one();
                true
            }
            None => false,
        }
    }

    /// Resolves once fewer sockets than the cap are open.
    pub async fn room(&self) {
        let mut sockets = self.sockets.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = sockets.wait_for(|&open| open < self.max).await;
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        *self.sockets.borrow() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIMITS: HttpLimits = HttpLimits {
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        max_connections: 2,
    };

    #[tokio::test]
    async fn each_phase_has_its_deadline() {
        let tracker = Tracker::new(0);
        assert_eq!(tracker.deadline(&LIMITS).map(|(_, why)| why), Some(Closed::HeaderTimeout));
        tracker.request_started(true);
        assert_eq!(tracker.deadline(&LIMITS), None, "the body has its own deadline");
        tracker.body_finished();
        assert_eq!(tracker.deadline(&LIMITS), None);
        tracker.request_finished();
        assert_eq!(tracker.deadline(&LIMITS).map(|(_, why)| why), Some(Closed::IdleTimeout));
        tracker.received_bytes();
        assert_eq!(tracker.deadline(&LIMITS).map(|(_, why)| why), Some(Closed::HeaderTimeout));
    }

    #[tokio::test]
    async fn the_oldest_connection_waiting_on_its_client_makes_way() {
        let connections = Connections::new(2);
        let busy = connections.open();
        busy.request_started(false);
        let slow = connections.open();
        assert!(connections.is_full());
        assert!(connections.can_make_way(), "the slow one can make way");
        assert!(connections.displace_oldest());
        assert!(slow.is_displaced() && !busy.is_displaced());
        assert!(connections.is_full() && connections.is_closing_one(), "until its socket is closed");
        connections.close(&slow);
        assert!(!connections.is_full() && !connections.is_closing_one());
        connections.room().await;
        let another = connections.open();
        another.request_started(false);
        assert!(!connections.can_make_way(), "every connection is handling a request");
        assert!(!connections.displace_oldest());
        another.request_finished();
        assert!(connections.displace_oldest());
        assert!(another.is_displaced());
    }
}
