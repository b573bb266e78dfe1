//! The signal both binaries stop on.

use std::future::Future;

use tokio::signal::unix::{SignalKind, signal as listen};

/// Resolves on the first SIGINT or SIGTERM, logging which one came. The
/// handlers are installed when this is called, not when the future is
/// first polled, so a signal that arrives while the server is still
/// starting (after it logged its address) is not lost to the default
/// action. Must be called inside a Tokio runtime.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    let interrupt = listen(SignalKind::interrupt());
    let terminate = listen(SignalKind::terminate());
    async move {
        let interrupt = async {
            match interrupt {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::error!(%error, "cannot listen for SIGINT");
                    std::future::pending::<()>().await;
                }
            }
        };
        let terminate = async {
            match terminate {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::error!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            () = interrupt => tracing::info!("SIGINT received, shutting down"),
            () = terminate => tracing::info!("SIGTERM received, shutting down"),
        }
    }
}
