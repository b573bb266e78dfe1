//! Black-box test support: starts the real `kassa-api` and `kassa-worker`
//! binaries as child processes on free ports against a fresh temporary SQLite
//! file, and talks to them over HTTP and SQL as a client would.
//!
//! # Layout
//! - [`binaries`]: locating (and if need be building) the binaries under test.
//! - [`process`]: a child process with captured output, killed on drop.
//! - [`app`]: `TestApp`, one method per endpoint.
//! - [`prometheus`]: a strict parser for `/metrics`.
//! - [`smtp`]: a real SMTP server (aiosmtpd) and parsing of what it received.
//! - [`invariants`]: stock conservation, one charge per order, quiescence.
//! - [`worker`]: starting, stopping and killing `kassa-worker` processes.
//! - [`admin`]: the stock audit every settled test asserts; scraping `/metrics`.
//! - [`load`]: the load generator and measurements behind the `load-bench` binary.
//! - [`chaos`]: the chaos harness behind the `chaos` binary: workload, kills, invariants.

pub mod admin;
pub mod app;
pub mod binaries;
pub mod chaos;
pub mod invariants;
pub mod load;
pub mod process;
pub mod prometheus;
pub mod smtp;
pub mod worker;
