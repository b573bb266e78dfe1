//! Black-box test support: starts the real `kassa-api` and `kassa-worker`
//! binaries as child processes on free ports against a fresh database (a
//! temporary SQLite file, or a PostgreSQL database of their own), and talks
//! to them over HTTP and SQL as a client would.
//!
//! # Layout
//! - [`backend`]: which database a test runs on, its fresh database, and
//!   [`black_box!`] for tests that run on both.
//! - [`binaries`]: locating (and if need be building) the binaries under test.
//! - [`process`]: a child process with captured output, killed on drop.
//! - [`app`]: `TestApp`, one method per endpoint.
//! - [`prometheus`]: a strict parser for `/metrics`, and the lint `promtool` would apply.
//! - [`smtp`]: a real SMTP server inside the test process, and parsing of what it received.
//! - [`invariants`]: stock conservation, one charge per order, quiescence.
//! - [`worker`]: starting, stopping and killing `kassa-worker` processes.
//! - [`admin`]: the stock audit every settled test asserts; scraping `/metrics`.
//! - [`console`]: the operator console over HTTP, and the workloads its tests look at.
//! - [`load`]: the load generator and measurements behind the `load-bench` binary.
//! - [`load_bench`]: the phases and results of the `load-bench` binary.
//! - [`queue_bench`]: the measurements and results of the `queue-bench` binary.
//! - [`chaos`]: the chaos harness behind the `chaos` binary: workload, kills, invariants.
//! - [`progress`]: progress bars and lines for the commands a person watches.
//! - [`results`]: measurements kept as data, rendered as tables and as JSON.

pub mod admin;
pub mod app;
pub mod backend;
pub mod binaries;
pub mod chaos;
pub mod console;
pub mod invariants;
pub mod load;
pub mod load_bench;
pub mod process;
pub mod progress;
pub mod prometheus;
pub mod queue_bench;
pub mod results;
pub mod smtp;
pub mod worker;
