//! Operators' queries: dashboard figures, sales reports, the job console and
//! the stock audit, plus the database samples behind the business gauges of
//! both `/metrics` endpoints. Read-only except the job console's actions,
//! which go through the queue's own audited operations.
//!
//! # Layout
//! - [`dashboard`]: accounts, catalogue, orders, revenue and queue at a glance.
//! - [`reports`]: sales, top products, cancellations and lead times over a range.
//! - [`jobs`]: listing jobs by console state, one job with its history.
//! - [`stock_audit`]: the stock conservation check, product by product.
//! - [`samples`]: cheap counts sampled into Prometheus gauges.
//! - [`console`]: the operator console's own reads: throughput, workers seen,
//!   fencing history, order search.

pub mod console;
pub mod dashboard;
pub mod jobs;
pub mod reports;
pub mod samples;
pub mod stock_audit;

/// Order statuses that count as sales: paid and not cancelled (a cancelled
/// order's capture is refunded). Spelled as SQL for `status in …`.
pub(crate) const PAID_STATUSES_SQL: &str = "('confirmed', 'shipped', 'delivered')";

/// Milliseconds in a day.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// SQL selecting the exact sum of `expr` (non-negative minor units) as two
/// columns that cannot overflow 64 bits however many orders a shop has:
/// the sum of the billions and the sum of the remainders. Combine them with
/// [`money_from_parts`].
pub(crate) fn money_sum(expr: &str) -> String {
    format!(
        "cast(coalesce(sum(({expr}) / 1000000000), 0) as bigint), cast(coalesce(sum(({expr}) % 1000000000), 0) as bigint)"
    )
}

/// The sum [`money_sum`] selected, in 128 bits.
pub(crate) fn money_from_parts(billions: i64, remainder: i64) -> i128 {
    i128::from(billions) * 1_000_000_000 + i128::from(remainder)
}

/// Milliseconds as fractional seconds, for ages and durations shown to operators.
pub(crate) fn ms_to_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}
