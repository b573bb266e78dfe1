//! Persistence functions both binaries call. Each takes a
//! `&mut DbConn` (a pooled connection or an open transaction) so a
//! caller composes several into one transaction.
//!
//! # Layout
//! - [`users`]: accounts and their credentials.
//! - [`products`]: the catalogue, its search, and stock adjustments.
//! - [`carts`]: shopping carts.
//! - [`orders`]: orders, reservations and status moves.
//! - [`payments`]: payment records.
//! - [`notifications`]: e-mails sent per (order, event).
//! - [`timeline`]: everything that happened to an order, in time order.
//! - [`idempotency`]: stored first responses for `Idempotency-Key`.
//! - [`admin`]: dashboard figures, reports and the stock audit.
//! - [`sql`]: dialect differences and a statement builder.

pub mod admin;
pub mod carts;
pub mod idempotency;
pub mod notifications;
pub mod orders;
pub mod payments;
pub mod products;
pub(crate) mod sql;
pub mod timeline;
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
    /// A job could not be pushed.
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
    /// Something that cannot happen did; the transaction must roll back.
    #[error("invariant broken: {0}")]
    Invariant(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl crate::db::WriteError for StoreError {
    fn as_database_error(&self) -> Option<&sqlx::Error> {
        match self {
            StoreError::Database(error) | StoreError::Queue(crate::queue::QueueError::Database(error)) => Some(error),
            _ => None,
        }
    }
}
