//! Persistence functions both binaries call. Each takes a
//! `&mut SqliteConnection` (a pooled connection or an open transaction) so a
//! caller composes several into one transaction.
//!
//! # Layout
//! - [`users`]: accounts.
//! - [`products`]: the catalogue, its search, and stock adjustments.

pub mod products;
pub mod users;

/// Why a store function could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist (or is hidden).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule would be broken; the message names what is taken.
    #[error("{0}")]
    Conflict(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}
