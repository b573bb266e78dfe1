//! Group commit of results: every ack that arrived while the previous group
//! was committing goes into the next transaction, so a busy worker pays one
//! commit for many jobs and an idle one commits at once.

use tokio::sync::{mpsc, oneshot};

use kassa_common::queue::outcome::error_chain;
use kassa_common::queue::store::{Ack, AckResult, JobStore};

/// A message to the acker.
pub(super) enum AckRequest {
    /// Record this result and say whether it was applied.
    Ack(Ack, oneshot::Sender<Result<AckResult, String>>),
    /// Answer once everything sent before has been committed.
    Flush(oneshot::Sender<()>),
}

pub(super) async fn run<S: JobStore>(store: S, mut requests: mpsc::UnboundedReceiver<AckRequest>, max_batch: usize) {
    let mut acks = Vec::new();
    let mut replies = Vec::new();
    let mut flushed = Vec::new();
    while let Some(first) = requests.recv().await {
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                AckRequest::Ack(ack, reply) => {
                    acks.push(ack);
                    replies.push(reply);
                }
                AckRequest::Flush(reply) => flushed.push(reply),
            }
            if acks.len() < max_batch.max(1) {
                next = requests.try_recv().ok();
            }
        }
        if !acks.is_empty() {
            match store.ack(&acks).await {
                Ok(results) => {
                    for (reply, result) in replies.drain(..).zip(results) {
                        let _ = reply.send(Ok(result));
                    }
                }
                Err(error) => {
                    let message = error_chain(&error);
                    for reply in replies.drain(..) {
                        let _ = reply.send(Err(message.clone()));
                    }
                }
            }
            acks.clear();
            replies.clear();
        }
        for reply in flushed.drain(..) {
            let _ = reply.send(());
        }
    }
}

/// Records `ack` in the next group commit and waits for it.
pub(super) async fn ack(acker: &mpsc::UnboundedSender<AckRequest>, ack: Ack) -> Result<AckResult, String> {
    let (reply, answer) = oneshot::channel();
    acker.send(AckRequest::Ack(ack, reply)).map_err(|_| "the acker has stopped".to_owned())?;
    answer.await.map_err(|_| "the acker stopped before committing".to_owned())?
}

/// Waits until every ack sent before has been committed (or failed).
pub(super) async fn flush(acker: &mpsc::UnboundedSender<AckRequest>) {
    let (reply, answer) = oneshot::channel();
    if acker.send(AckRequest::Flush(reply)).is_ok() {
        let _ = answer.await;
    }
}
