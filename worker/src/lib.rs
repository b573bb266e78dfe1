//! Kassa's job worker: apalis workers running Kassa's jobs from its own
//! durable queue (see `kassa_common::queue`). The `kassa-worker` binary is a
//! thin wrapper around [`run`]; `kassa-api --with-worker` embeds the same
//! runtime.
//!
//! # Layout
//! - [`config`]: flags and `KASSA_*` variables, checked into a [`WorkerConfig`].
//! - [`registry`]: the [`Job`] trait, job types → handlers, the apalis service.
//! - [`jobs`]: one job type per file.
//! - [`mail`]: e-mail over SMTP or to the outbox, and its templates.
//! - [`payments`]: the payment gateway trait and the sandbox provider.
//! - [`queue`]: the queue's runtime — apalis' `Backend` over the job store,
//!   with group-committed acks, heartbeats, lease rescue and retention.
//! - [`runtime`]: [`run`], the worker until shutdown.
//! - [`services`]: the payment gateway and mailer jobs call.
//! - [`telemetry`]: logs and the Prometheus endpoint of the binary.

pub mod config;
pub mod jobs;
pub mod mail;
pub mod payments;
pub mod queue;
pub mod registry;
pub mod runtime;
pub mod services;
pub mod telemetry;

pub use config::{ConfigError, WorkerConfig, WorkerOptions};
pub use kassa_common::queue::{JobError, Outcome};
pub use registry::{Job, JobContext, Registry};
pub use runtime::{run, run_with_registry};

/// A registry of every job type this crate defines.
pub fn registry_with_all_jobs() -> Registry {
    let mut registry = Registry::new();
    jobs::register_all(&mut registry);
    registry
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_registry_runs_exactly_the_job_types_the_api_lists() {
        assert_eq!(super::registry_with_all_jobs().job_types(), kassa_common::jobs::JOB_TYPES);
    }
}
