//! Payment gateways: a pluggable trait, and the built-in `sandbox` provider
//! that follows Stripe's test payment methods.
//!
//! # Layout
//! - [`sandbox`]: the sandbox provider with its own ledger.

pub mod sandbox;

use futures::future::BoxFuture;

pub use sandbox::{SandboxConfig, SandboxGateway};

/// A charge to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeRequest {
    /// The order paid for.
    pub order_id: i64,
    /// Amount in minor units.
    pub amount_cents: i64,
    /// Currency.
    pub currency: String,
    /// Payment method token, e.g. `pm_card_visa`.
    pub payment_method: String,
    /// Same key, same result: a retried call never charges twice.
    pub idempotency_key: String,
}

/// A refund to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundRequest {
    /// The order refunded.
    pub order_id: i64,
    /// The charge's reference.
    pub charge_reference: String,
    /// Amount in minor units.
    pub amount_cents: i64,
    /// Currency.
    pub currency: String,
    /// Same key, same result: a retried call never refunds twice.
    pub idempotency_key: String,
}

/// What the provider answered to a successful call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The provider's reference for the charge or refund.
    pub reference: String,
}

/// Why a call failed, and whether it is worth retrying.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Permanent: the provider said no (card declined). Do not retry.
    #[error("declined: {0}")]
    Declined(String),
    /// Transient: timeout, provider unavailable. Retry with the same key.
    #[error("transient gateway failure: {0}")]
    Transient(String),
}

/// A payment provider. Implementations must honour idempotency keys.
pub trait PaymentGateway: Send + Sync + 'static {
    /// The provider's name, recorded with each payment.
    fn provider(&self) -> &'static str;
    /// Charges a payment method.
    fn charge<'a>(&'a self, request: &'a ChargeRequest) -> BoxFuture<'a, Result<Receipt, GatewayError>>;
    /// Refunds a charge.
    fn refund<'a>(&'a self, request: &'a RefundRequest) -> BoxFuture<'a, Result<Receipt, GatewayError>>;
}

/// The idempotency key of an order's charge.
pub fn charge_key(order_id: i64) -> String {
    format!("order-{order_id}-charge")
}

/// The idempotency key of an order's refund.
pub fn refund_key(order_id: i64) -> String {
    format!("order-{order_id}-refund")
}
