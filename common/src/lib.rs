//! Kassa's domain and persistence, shared by the `kassa-api` and
//! `kassa-worker` binaries.
//!
//! # Layout
//! - [`db`]: the database seam: SQLite or PostgreSQL, migrations, units of work.
//! - [`domain`]: validated domain values (money, accounts, products).
//! - [`store`]: persistence functions over a connection or transaction.
//! - [`queue`]: the durable job store under the apalis workers.
//! - [`jobs`]: payloads of the order pipeline's jobs.
//! - [`time`]: timestamps as stored and as shown.
//! - [`shutdown`]: the signal both binaries stop on.

pub mod db;
pub mod domain;
pub mod jobs;
pub mod queue;
pub mod shutdown;
pub mod store;
pub mod time;
