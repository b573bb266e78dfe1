//! Kassa's HTTP API: accounts, catalogue, carts, checkout and orders over
//! axum, documented by OpenAPI, with errors as RFC 9457 problem documents.
//!
//! # Layout
//! - [`config`]: flags and `KASSA_*` variables.
//! - [`startup`]: building state, serving, operator subcommands.
//! - [`state`]: what handlers share.
//! - [`routes`]: one route group per file, and the OpenAPI document.
//! - [`auth`]: tokens, passwords, secrets and the `AuthUser`/`AdminUser` extractors.
//! - [`extract`]: body, query and path extractors with problem rejections.
//! - [`error`]: the one error type and its problem rendering.
//! - [`idempotency`]: `Idempotency-Key` replay for order creation.
//! - [`telemetry`]: logs, request ids and HTTP metrics.

pub mod auth;
pub mod config;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
