//! Kassa's HTTP API as a library: accounts, catalogue, carts, checkout and
//! orders over axum, documented by OpenAPI, with errors as RFC 9457 problem
//! documents. It knows nothing of the job worker: the `kassa-api` binary
//! (`api/src`) composes the two for `--with-worker`.
//!
//! # Layout
//! - [`config`]: the API's flags and `KASSA_*` variables.
//! - [`startup`]: building state, serving, operator subcommands.
//! - [`state`]: what handlers share.
//! - [`routes`]: one route group per file, and the OpenAPI document.
//! - [`auth`]: tokens, passwords, secrets and the `AuthUser`/`AdminUser` extractors.
//! - [`extract`]: body, query and path extractors with problem rejections.
//! - [`error`]: the one error type and its problem rendering.
//! - [`idempotency`]: `Idempotency-Key` replay for order creation.
//! - [`migrate`]: `kassa-api migrate` with progress and a summary.
//! - [`telemetry`]: logs, request ids and HTTP metrics.
//! - [`server`]: the accept loop: connection deadlines, the connection cap.
//! - [`security`]: hardening response headers.
//! - [`console`]: the operator console, HTML pages under `/console/`.

pub mod auth;
pub mod config;
pub mod console;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod migrate;
pub mod routes;
pub mod security;
pub mod server;
pub mod startup;
pub mod state;
pub mod telemetry;
