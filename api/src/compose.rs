//! The composition root: the API served alone, or with the job worker in
//! the same process on the same database (`--with-worker`). The only place
//! that knows both crates.

use anyhow::Context;
use futures::FutureExt;
use kassa_http::startup::{self, Companion};

use crate::cli::Serve;

/// Serves the API, with the embedded worker if asked, until SIGINT/SIGTERM.
pub async fn serve(serve: Serve) -> anyhow::Result<()> {
    let companion: Option<Companion> = if serve.with_worker {
        let registry = kassa_worker::registry_with_all_jobs();
        let options = serve.worker.clone().with_data_dir(&serve.api.db.data_dir);
        let config = options.into_config(&registry).context("Invalid embedded worker settings")?;
        Some(Box::new(move |db, shutdown| {
            // The API installed the metrics recorder; the worker's series need HELP too.
            kassa_worker::telemetry::describe_job_metrics();
            kassa_worker::run_with_registry(config, db, registry, shutdown).boxed()
        }))
    } else {
        None
    };
    startup::serve(serve.api, companion).await
}
