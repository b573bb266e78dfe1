//! Payloads of the order pipeline's jobs: ids only, so a job always acts on
//! the current state of the database. The worker's handlers live in
//! `worker/src/jobs/`; the API and the handlers push these.

use serde::{Deserialize, Serialize};

use crate::domain::order::{CancelReason, OrderStatus};
use crate::queue::{JobPayload, NewJob, QueueError};

/// Every job type a Kassa worker runs, sorted: the order pipeline's and
/// the queue's diagnostic `noop` and `probe` (whose payloads live with
/// their handlers in the worker). The API lists them on the dashboard
/// without depending on the worker; the worker's registry is checked
/// against this list by a test.
pub const JOB_TYPES: [&str; 6] = ["charge", "noop", "notify", "probe", "reserve_stock", "status_transition"];

/// Reserve every unit of an order, all or nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveStock {
    /// The order.
    pub order_id: i64,
}

impl JobPayload for ReserveStock {
    const JOB_TYPE: &'static str = "reserve_stock";
}

/// Charge an order's payment method through the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    /// The order.
    pub order_id: i64,
}

impl JobPayload for Charge {
    const JOB_TYPE: &'static str = "charge";
}

/// Move an order from one status to another (compare-and-set).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusTransition {
    /// The order.
    pub order_id: i64,
    /// The status the order must be in for the move to happen.
    pub from: OrderStatus,
    /// The status to move to.
    pub to: OrderStatus,
    /// Who asked: `system`, `user:ID` or `admin:ID`.
    pub actor: String,
    /// For a cancellation, its reason code (`customer_request`, …). Jobs
    /// pushed before notes existed may hold a person's free text here; it is
    /// read as the note.
    pub reason: Option<String>,
    /// Free text from whoever asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl JobPayload for StatusTransition {
    const JOB_TYPE: &'static str = "status_transition";
}

impl StatusTransition {
    /// The move's reason code and note. A free-text `reason` (older jobs)
    /// becomes the note, and the code is that of whoever asked.
    pub fn reason_and_note(&self) -> (Option<CancelReason>, Option<&str>) {
        match self.reason.as_deref() {
            None => (None, self.note.as_deref()),
            Some(text) => match CancelReason::parse(text) {
                Some(code) => (Some(code), self.note.as_deref()),
                None => (Some(CancelReason::requested_by(&self.actor)), Some(text)),
            },
        }
    }
}

/// What happened to an order that its customer is told about by e-mail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotifyEvent {
    /// The order was accepted (pending).
    Received,
    /// Stock reserved and payment captured.
    Confirmed,
    /// Handed to the carrier.
    Shipped,
    /// Delivered.
    Delivered,
    /// Cancelled, with the reason in words.
    Cancelled,
}

impl NotifyEvent {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Received => "received",
            NotifyEvent::Confirmed => "confirmed",
            NotifyEvent::Shipped => "shipped",
            NotifyEvent::Delivered => "delivered",
            NotifyEvent::Cancelled => "cancelled",
        }
    }

    /// The event announcing that an order reached `status`.
    pub fn for_status(status: OrderStatus) -> NotifyEvent {
        match status {
            OrderStatus::Pending => NotifyEvent::Received,
            OrderStatus::Confirmed => NotifyEvent::Confirmed,
            OrderStatus::Shipped => NotifyEvent::Shipped,
            OrderStatus::Delivered => NotifyEvent::Delivered,
            OrderStatus::Cancelled => NotifyEvent::Cancelled,
        }
    }
}

/// E-mail the customer about an event of their order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    /// The order.
    pub order_id: i64,
    /// What to tell.
    pub event: NotifyEvent,
}

impl JobPayload for Notify {
    const JOB_TYPE: &'static str = "notify";
}

/// A job for `payload`, deduplicated per order (and per move for transitions),
/// so pushing the same step twice is a no-op.
pub trait OrderJob: JobPayload {
    /// The order the job acts on.
    fn order_id(&self) -> i64;
    /// The key unique per (job type, step of this order).
    fn dedup_key(&self) -> String;
    /// The job to push, linked to its order's timeline.
    fn to_job(&self) -> Result<NewJob, QueueError>
    where
        Self: Sized,
    {
        Ok(NewJob::new(self)?.dedup_key(self.dedup_key()).for_order(self.order_id()))
    }
}

impl OrderJob for ReserveStock {
    fn order_id(&self) -> i64 {
        self.order_id
    }
    fn dedup_key(&self) -> String {
        self.order_id.to_string()
    }
}

impl OrderJob for Charge {
    fn order_id(&self) -> i64 {
        self.order_id
    }
    fn dedup_key(&self) -> String {
        self.order_id.to_string()
    }
}

impl OrderJob for StatusTransition {
    fn order_id(&self) -> i64 {
        self.order_id
    }
    fn dedup_key(&self) -> String {
        format!("{}:{}:{}", self.order_id, self.from, self.to)
    }
}

impl OrderJob for Notify {
    fn order_id(&self) -> i64 {
        self.order_id
    }
    fn dedup_key(&self) -> String {
        format!("{}:{}", self.order_id, self.event.as_str())
    }
}
