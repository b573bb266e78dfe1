//! Orders: the status lifecycle and its transition table (the single source
//! of truth for the API and the worker), cancellation reasons, quantities and
//! payment methods.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Most units of one product in one order or cart line.
pub const MAX_QUANTITY: i64 = 1000;
/// Most distinct products in one order.
pub const MAX_ORDER_LINES: usize = 100;
/// The payment method used when a checkout names none.
pub const DEFAULT_PAYMENT_METHOD: &str = "pm_card_visa";

/// Where an order is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Accepted; stock and payment not yet settled.
    Pending,
    /// Stock reserved and payment captured.
    Confirmed,
    /// Handed to the carrier.
    Shipped,
    /// Received by the customer.
    Delivered,
    /// Stopped; any reserved stock restored and any payment refunded.
    Cancelled,
}

impl OrderStatus {
    /// Every status.
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Pending,
        OrderStatus::Confirmed,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
    ];

    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// The status with this stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        OrderStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Parses a stored or client-given name.
    pub fn parse(name: &str) -> Result<Self, String> {
        OrderStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| "must be one of pending, confirmed, shipped, delivered, cancelled".to_owned())
    }

    /// The statuses this one may move to: pending → confirmed | cancelled,
    /// confirmed → shipped | cancelled, shipped → delivered. Nothing else.
    pub fn allowed_next(self) -> &'static [OrderStatus] {
        match self {
            OrderStatus::Pending => &[OrderStatus::Confirmed, OrderStatus::Cancelled],
            OrderStatus::Confirmed => &[OrderStatus::Shipped, OrderStatus::Cancelled],
            OrderStatus::Shipped => &[OrderStatus::Delivered],
            OrderStatus::Delivered | OrderStatus::Cancelled => &[],
        }
    }

    /// Whether `self → next` is in the transition table.
    pub fn can_move_to(self, next: OrderStatus) -> bool {
        self.allowed_next().contains(&next)
    }

    /// Whether no further move is possible.
    pub fn is_terminal(self) -> bool {
        self.allowed_next().is_empty()
    }
}

crate::text_column!(OrderStatus);

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an order was cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// Not enough stock when the reservation ran.
    OutOfStock,
    /// The payment provider declined the payment.
    PaymentDeclined,
    /// The payment kept failing transiently until attempts ran out.
    PaymentFailed,
    /// The customer cancelled.
    CustomerRequest,
    /// An admin cancelled.
    AdminRequest,
}

impl CancelReason {
    /// Every reason the system itself gives.
    pub const ALL: [CancelReason; 5] = [
        CancelReason::OutOfStock,
        CancelReason::PaymentDeclined,
        CancelReason::PaymentFailed,
        CancelReason::CustomerRequest,
        CancelReason::AdminRequest,
    ];

    /// The reason with this stored name, if it is one of [`CancelReason::ALL`]
    /// (a free-text reason given by a person is not).
    pub fn parse(name: &str) -> Option<CancelReason> {
        CancelReason::ALL.into_iter().find(|reason| reason.as_str() == name)
    }

    /// The code of a cancellation a person asked for: `admin_request` for
    /// an actor `admin:ID`, `customer_request` for anyone else.
    pub fn requested_by(actor: &str) -> CancelReason {
        if actor.starts_with("admin:") { CancelReason::AdminRequest } else { CancelReason::CustomerRequest }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::OutOfStock => "out_of_stock",
            CancelReason::PaymentDeclined => "payment_declined",
            CancelReason::PaymentFailed => "payment_failed",
            CancelReason::CustomerRequest => "customer_request",
            CancelReason::AdminRequest => "admin_request",
        }
    }

    /// The reason in words, for e-mails.
    pub fn in_words(self) -> &'static str {
        match self {
            CancelReason::OutOfStock => "an item in your order is out of stock",
            CancelReason::PaymentDeclined => "your payment was declined",
            CancelReason::PaymentFailed => "we could not process your payment",
            CancelReason::CustomerRequest => "you asked us to cancel it",
            CancelReason::AdminRequest => "our team cancelled it",
        }
    }
}

/// Validates a line quantity: 1 to [`MAX_QUANTITY`].
pub fn parse_quantity(quantity: i64) -> Result<i64, String> {
    if (1..=MAX_QUANTITY).contains(&quantity) {
        Ok(quantity)
    } else {
        Err(format!("must be between 1 and {MAX_QUANTITY}"))
    }
}

/// Validates a payment method token such as `pm_card_visa`: 1–64 characters
/// of letters, digits and `_`. Which methods succeed is the gateway's call.
pub fn parse_payment_method(method: Option<&str>) -> Result<String, String> {
    let method = method.map(str::trim).unwrap_or(DEFAULT_PAYMENT_METHOD);
    if method.is_empty() || method.len() > 64 || !method.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err("must be 1 to 64 letters, digits or '_' (e.g. pm_card_visa)".into());
    }
    Ok(method.to_owned())
}

#[cfg(test)]
mod tests {
    use super::OrderStatus::*;
    use super::*;

    #[test]
    fn the_transition_table_allows_exactly_the_lifecycle() {
        let allowed: Vec<(OrderStatus, OrderStatus)> = OrderStatus::ALL
            .into_iter()
            .flat_map(|from| OrderStatus::ALL.into_iter().map(move |to| (from, to)))
            .filter(|(from, to)| from.can_move_to(*to))
            .collect();
        assert_eq!(
            allowed,
            [
                (Pending, Confirmed),
                (Pending, Cancelled),
                (Confirmed, Shipped),
                (Confirmed, Cancelled),
                (Shipped, Delivered)
            ]
        );
        assert!(Delivered.is_terminal() && Cancelled.is_terminal() && !Shipped.is_terminal());
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Ok(status));
        }
        assert!(OrderStatus::parse("lost").is_err());
        for reason in CancelReason::ALL {
            assert_eq!(CancelReason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(CancelReason::parse("changed my mind"), None);
    }

    #[test]
    fn quantities_and_payment_methods_are_checked() {
        assert_eq!(parse_quantity(1), Ok(1));
        assert!(parse_quantity(0).is_err() && parse_quantity(1001).is_err() && parse_quantity(-3).is_err());
        assert_eq!(parse_payment_method(None).as_deref(), Ok(DEFAULT_PAYMENT_METHOD));
        assert_eq!(parse_payment_method(Some("pm_card_chargeDeclined")).as_deref(), Ok("pm_card_chargeDeclined"));
        assert!(parse_payment_method(Some("pm\r\nx")).is_err());
        assert!(parse_payment_method(Some("")).is_err());
    }
}
