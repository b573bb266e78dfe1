//! Request and response bodies as the connection sees them: a request body
//! has one deadline for all of it (a body trickling a byte a second never
//! stalls long enough for a per-read timeout, so the whole body is timed),
//! and both report to the connection's [`Tracker`] when they end.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::connections::Tracker;
use crate::error::problem_response;

/// Set on a request whose body missed its deadline, so the response can
/// say so (408) whatever the extractor made of the failed read.
#[derive(Clone, Debug, Default)]
pub struct BodyTimedOut(Arc<AtomicBool>);

impl BodyTimedOut {
    /// Whether the body missed its deadline.
    pub fn fired(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The error a late body ends with.
#[derive(Debug)]
pub struct BodyTimeout;

impl fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl StdError for BodyTimeout {}

/// What a body's reader gets; errors are boxed, as hyper's and axum's are.
type BoxError = Box<dyn StdError + Send + Sync>;

/// A request body that must be complete by a deadline.
pub struct RequestBody<B> {
    inner: B,
    deadline: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    timed_out: BodyTimedOut,
    tracker: Arc<Tracker>,
    finished: bool,
}

impl<B: Body> RequestBody<B> {
    /// Wraps `inner`, which must be complete by `deadline`; tells `tracker`
    /// when it is.
    pub fn new(inner: B, deadline: Instant, timed_out: BodyTimedOut, tracker: Arc<Tracker>) -> Self {
        let finished = inner.is_end_stream();
        Self { inner, deadline, sleep: None, timed_out, tracker, finished }
    }

    fn finish(&mut self) {
        if !self.finished {
            self.finished = true;
            self.tracker.body_finished();
        }
    }

    fn time_out(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.timed_out.0.store(true, Ordering::Release);
        self.finish();
        Poll::Ready(Some(Err(Box::new(BodyTimeout))))
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.finished && this.inner.is_end_stream() {
            return Poll::Ready(None);
        }
        if Instant::now() >= this.deadline {
            return this.time_out();
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => {
                this.finish();
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if this.inner.is_end_stream() {
                    this.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                let deadline = this.deadline;
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.as_mut().poll(cx).is_ready() {
                    return this.time_out();
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for RequestBody<B> {
    fn drop(&mut self) {
        // A handler that answers without reading the body is done with it.
        if !self.finished {
            self.finished = true;
            self.tracker.body_finished();
        }
    }
}

/// A response body that tells the connection's tracker when it has been
/// written, or dropped unwritten.
pub struct ResponseBody {
    inner: axum::body::Body,
    tracker: Arc<Tracker>,
}

impl ResponseBody {
    /// Wraps `inner` for the connection `tracker` follows.
    pub fn new(inner: axum::body::Body, tracker: Arc<Tracker>) -> Self {
        Self { inner, tracker }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        self.tracker.request_finished();
    }
}

/// Answers 408 (and closes the connection) for a request whose body missed
/// its deadline, whatever the handler or its extractor answered.
pub async fn answer_body_timeouts(request: Request, next: Next) -> Response {
    let timed_out = request.extensions().get::<BodyTimedOut>().cloned();
    let response = next.run(request).await;
    if !timed_out.is_some_and(|t| t.fired()) {
        return response;
    }
    let mut response = problem_response(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time");
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
