//! Serving HTTP/1.1 on Kassa's own accept loop. `axum::serve` can neither
//! time out a slow request head nor cap connections, so one client could
//! hold sockets forever (a header byte every 10 s, a trickling body, an idle
//! keep-alive) and enough of them exhaust the open-file limit until the API
//! stopped answering at all. Here every phase of a connection has a
//! deadline, connections are capped below the open-file limit, and at the
//! cap the oldest connection that is only waiting on its client makes way
//! for the new one — so a flood of slow connections cannot lock out a fresh
//! client — and accept errors never end the loop.
//!
//! # Layout
//! - [`limits`]: the limits in force, fitted under the open-file limit.
//! - `connections`: each connection's phase and deadline; the cap, and who makes way.
//! - `body`: request bodies with one deadline for all of them; response
//!   bodies that report when they are written; the 408 answer.
//! - `io`: the socket wrapper that notices a request's first byte.

mod body;
mod connections;
mod io;
pub mod limits;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

pub use body::answer_body_timeouts;
use body::{BodyTimedOut, RequestBody, ResponseBody};
use connections::{Closed, Connections, Tracker};
use io::WatchedStream;
pub use limits::{HttpLimits, raise_open_files_limit};

/// Pause after a failed accept (out of file descriptors, say) before the next.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(50);
/// How long accepting must work before a burst of failures is over.
const ACCEPT_BURST_QUIET: Duration = Duration::from_secs(1);
/// How often a full server looks again for a connection that could make way.
const FULL_RECHECK: Duration = Duration::from_millis(50);

/// Connections the kernel queues for `accept`; it caps the number at
/// `net.core.somaxconn` (4096 on current Linux). A burst larger than the
/// queue has its SYNs dropped, and each dropped client waits a second to
/// retry, so the queue is made deep enough for a burst of thousands.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` for [`serve`] with a listen queue of [`LISTEN_BACKLOG`].
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // As `TcpListener::bind` does: a restarted server can bind at once.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves,
/// then stops accepting and waits for open connections to finish their
/// requests (idle ones close at once).
pub async fn serve<S>(listener: TcpListener, app: Router, limits: HttpLimits, shutdown: S)
where
    S: Future<Output = ()> + Clone + Send + 'static,
{
    let connections = Arc::new(Connections::new(limits.max_connections));
    let mut tasks = JoinSet::new();
    let stop = shutdown.clone();
    tokio::pin!(stop);
    let mut accept_failures = AcceptFailures::default();
    'accept: loop {
        while let Some(finished) = tasks.try_join_next() {
            report_panic(finished);
        }
        if connections.is_full() && !connections.can_make_way() {
            // Every connection is handling a request: new ones wait in the
            // kernel's listen queue until one is done.
            tokio::select! {
                () = &mut stop => break,
                () = connections.room() => {}
                () = tokio::time::sleep(FULL_RECHECK) => {}
            }
            continue;
        }
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                accept_failures.succeeded();
                accepted
            }
            Err(error) if is_about_one_connection(&error) => continue,
            Err(error) => {
                accept_failures.failed(&error);
                // Most likely out of file descriptors: free one.
                connections.displace_oldest();
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep(ACCEPT_RETRY_PAUSE) => {}
                }
                continue;
            }
        };
        // At the cap, the oldest connection waiting on its client makes
        // way; the new one is served once that socket is closed.
        while connections.is_full() {
            if !connections.is_closing_one() {
                connections.displace_oldest();
            }
            tokio::select! {
                () = &mut stop => break 'accept,
                () = connections.room() => {}
                () = tokio::time::sleep(FULL_RECHECK) => {}
            }
        }
        let tracker = connections.open();
        let connection = Connection { peer, app: app.clone(), tracker, limits };
        tasks.spawn(connection.run(stream, Arc::clone(&connections), shutdown.clone()));
    }
    drop(listener);
    while let Some(finished) = tasks.join_next().await {
        report_panic(finished);
    }
    debug_assert!(connections.is_empty(), "every connection task unregisters itself");
}

/// Failed accepts come in bursts (out of file descriptors until some
/// close): the first of a burst is logged, and the recovery once accepting
/// has worked for a second, with the count.
#[derive(Default)]
struct AcceptFailures {
    count: u64,
    last: Option<Instant>,
}

impl AcceptFailures {
    fn failed(&mut self, error: &std::io::Error) {
        if self.count == 0 {
            tracing::warn!(%error, "accept failed; closing the oldest idle connection and retrying every 50 ms (logged once per burst)");
        }
        self.count += 1;
        self.last = Some(Instant::now());
    }

    fn succeeded(&mut self) {
        if self.count > 0 && self.last.is_some_and(|last| last.elapsed() >= ACCEPT_BURST_QUIET) {
            tracing::info!(failed_accepts = self.count, "accepting connections again");
            self.count = 0;
        }
    }
}

/// Errors of `accept` that concern only the connection being accepted.
fn is_about_one_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset)
}

fn report_panic(finished: Result<(), tokio::task::JoinError>) {
    if let Err(error) = finished
        && error.is_panic()
    {
        tracing::error!(%error, "a connection task panicked");
    }
}

/// One accepted connection.
struct Connection {
    peer: SocketAddr,
    app: Router,
    tracker: Arc<Tracker>,
    limits: HttpLimits,
}

impl Connection {
    /// Serves requests until the client leaves, a deadline passes, the
    /// connection is displaced, or shutdown has drained it.
    async fn run<S>(self, stream: TcpStream, connections: Arc<Connections>, shutdown: S)
    where
        S: Future<Output = ()> + Send,
    {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let io = TokioIo::new(WatchedStream::new(stream, Arc::clone(&self.tracker)));
        let service = {
            let (peer, app, tracker, limits) = (self.peer, self.app.clone(), Arc::clone(&self.tracker), self.limits);
            hyper::service::service_fn(move |request| handle(request, peer, app.clone(), Arc::clone(&tracker), limits))
        };
        let mut builder = http1::Builder::new();
        // Hyper's own header timeout also runs while a kept-alive connection
        // is idle; the deadlines below tell the two apart.
        builder.header_read_timeout(None);
        let mut connection = Box::pin(builder.serve_connection(io, service));
        tokio::pin!(shutdown);
        let mut draining = false;
        let closed_by_server = loop {
            if self.tracker.is_displaced() {
                break Some(Closed::Displaced);
            }
            let deadline = self.tracker.deadline(&self.limits).map(|(at, _)| at);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(error) = served {
                        tracing::debug!(%error, peer = %self.peer, "connection ended with an error");
                    }
                    break None;
                }
                () = sleep_until(deadline) => {
                    if let Some((at, why)) = self.tracker.deadline(&self.limits)
                        && at <= Instant::now()
                    {
                        break Some(why);
                    }
                }
                () = self.tracker.changed() => {}
                () = &mut shutdown, if !draining => {
                    connection.as_mut().graceful_shutdown();
                    draining = true;
                }
            }
        };
        drop(connection);
        if let Some(why) = closed_by_server {
            tracing::debug!(peer = %self.peer, reason = why.as_str(), "connection closed by the server");
            metrics::counter!("kassa_http_connections_closed_total", "reason" => why.as_str()).increment(1);
        }
        connections.close(&self.tracker);
    }
}

/// One request: the peer's address for rate limiting, the body's deadline,
/// and the tracker told when the response is written.
async fn handle(
    request: hyper::Request<Incoming>,
    peer: SocketAddr,
    app: Router,
    tracker: Arc<Tracker>,
    limits: HttpLimits,
) -> Result<hyper::Response<ResponseBody>, Infallible> {
    tracker.request_started(!request.body().is_end_stream());
    let timed_out = BodyTimedOut::default();
    let deadline = Instant::now() + limits.body_timeout;
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(ConnectInfo(peer));
    parts.extensions.insert(timed_out.clone());
    let body = axum::body::Body::new(RequestBody::new(body, deadline, timed_out, Arc::clone(&tracker)));
    let response = match app.oneshot(Request::from_parts(parts, body)).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    Ok(response.map(|body| ResponseBody::new(body, tracker)))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
