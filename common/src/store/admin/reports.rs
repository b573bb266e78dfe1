//! Sales reports over a date range: orders and sales per day, week or month,
//! average order value, top products, cancellations by reason, and how long
//! orders take from pending to confirmed and from confirmed to delivered.
//!
//! Every figure is about the orders *placed* in the range (a cohort), so a
//! report for a closed range never changes except as those orders move on.

use std::collections::BTreeMap;

use crate::db::DbConn;
use chrono::{DateTime, Datelike, Days, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{DAY_MS, PAID_STATUSES_SQL, money_from_parts, money_sum, ms_to_seconds};
use crate::domain::validation::ValidationErrors;
use crate::time::format_ms;

/// Longest range a report covers, in days (five years).
pub const MAX_REPORT_DAYS: i64 = 5 * 366;
/// Days covered when `from` is not given.
pub const DEFAULT_REPORT_DAYS: i64 = 30;
/// Products listed in each top list.
pub const TOP_PRODUCTS: i64 = 10;

/// How a report's rows are grouped. Weeks start on Monday (ISO 8601); all in UTC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// One row per day.
    #[default]
    Day,
    /// One row per ISO week.
    Week,
    /// One row per calendar month.
    Month,
}

/// A checked report range: `[from_ms, to_ms)` in Unix milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportRange {
    /// First instant included.
    pub from_ms: i64,
    /// First instant not included.
    pub to_ms: i64,
    /// Row grouping.
    pub group_by: GroupBy,
}

/// Parses a bound: `YYYY-MM-DD` (a whole UTC day) or an RFC 3339 instant.
/// Returns the first millisecond and the first millisecond after it.
fn parse_bound(text: &str) -> Result<(i64, i64), String> {
    let text = text.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let start = date.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis());
        return start.map(|start| (start, start + DAY_MS)).ok_or_else(|| "is not a valid date".to_owned());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|instant| {
            let ms = instant.timestamp_millis();
            (ms, ms + 1)
        })
        .map_err(|_| "must be a date (YYYY-MM-DD) or an RFC 3339 timestamp".to_owned())
}

impl ReportRange {
    /// Checks `from` and `to`, both inclusive: a date covers its whole UTC
    /// day, a timestamp its own millisecond. Without `to` the range ends now;
    /// without `from` it starts 30 days before `to`. `from` after `to`, or a
    /// range longer than five years, is refused.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        group_by: Option<GroupBy>,
        now_ms: i64,
    ) -> Result<ReportRange, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let from = from.filter(|s| !s.trim().is_empty()).map(parse_bound);
        let to = to.filter(|s| !s.trim().is_empty()).map(parse_bound);
        let to_ms = match to {
            None => Some(now_ms + 1),
            Some(Ok((_, end))) => Some(end),
            Some(Err(message)) => {
                errors.add("to", message);
                None
            }
        };
        let from_ms = match from {
            None => to_ms.map(|to_ms| to_ms - to_ms.rem_euclid(DAY_MS) - (DEFAULT_REPORT_DAYS - 1) * DAY_MS),
            Some(Ok((start, _))) => Some(start),
            Some(Err(message)) => {
                errors.add("from", message);
                None
            }
        };
        if let (Some(from_ms), Some(to_ms)) = (from_ms, to_ms) {
            if from_ms >= to_ms {
                errors.add("from", "must not be after `to`");
            } else if to_ms - from_ms > MAX_REPORT_DAYS * DAY_MS {
                errors.add("to", format!("the range must not exceed {MAX_REPORT_DAYS} days"));
            }
        }
        errors.finish()?;
        match (from_ms, to_ms) {
            (Some(from_ms), Some(to_ms)) => Ok(ReportRange { from_ms, to_ms, group_by: group_by.unwrap_or_default() }),
            _ => Err(ValidationErrors::single("from", "is invalid")),
        }
    }

    /// The periods covering the range, in order, each clipped to the range.
    pub fn periods(&self) -> Vec<(String, i64, i64)> {
        let mut periods = Vec::new();
        let Some(first_day) = day_of(self.from_ms) else { return periods };
        let mut start = period_start(first_day, self.group_by);
        while let Some(next) = next_period(start, self.group_by) {
            let start_ms = midnight_ms(start).max(self.from_ms);
            let end_ms = midnight_ms(next).min(self.to_ms);
            if start_ms >= self.to_ms {
                break;
            }
            periods.push((period_label(start, self.group_by), start_ms, end_ms));
            start = next;
        }
        periods
    }
}

fn day_of(ms: i64) -> Option<NaiveDate> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(|t| t.date_naive())
}

fn midnight_ms(date: NaiveDate) -> i64 {
    date.and_hms_opt(0, 0, 0).map_or(i64::MAX, |t| t.and_utc().timestamp_millis())
}

fn period_start(day: NaiveDate, group_by: GroupBy) -> NaiveDate {
    match group_by {
        GroupBy::Day => day,
        GroupBy::Week => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
        GroupBy::Month => day.with_day(1).unwrap_or(day),
    }
}

fn next_period(start: NaiveDate, group_by: GroupBy) -> Option<NaiveDate> {
    match group_by {
        GroupBy::Day => start.checked_add_days(Days::new(1)),
        GroupBy::Week => start.checked_add_days(Days::new(7)),
        GroupBy::Month => start.checked_add_months(Months::new(1)),
    }
}

/// `2025-11-26`, `2025-W48` (ISO week) or `2025-11`.
fn period_label(start: NaiveDate, group_by: GroupBy) -> String {
    match group_by {
        GroupBy::Day => start.format("%Y-%m-%d").to_string(),
        GroupBy::Week => {
            let week = start.iso_week();
            format!("{}-W{:02}", week.year(), week.week())
        }
        GroupBy::Month => start.format("%Y-%m").to_string(),
    }
}

/// Orders and sales in one period (or the whole range).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PeriodFigures {
    /// `2025-11-26`, `2025-W48` or `2025-11`; `total` for the whole range.
    pub period: String,
    /// Start of the period within the range (RFC 3339).
    pub start: String,
    /// End of the period within the range, exclusive (RFC 3339).
    pub end: String,
    /// Orders placed.
    pub orders: i64,
    /// Of those, orders confirmed, shipped or delivered.
    pub paid_orders: i64,
    /// Of those, orders cancelled.
    pub cancelled_orders: i64,
    /// Sum of the paid orders' totals, in minor units (exact: computed in
    /// 128 bits, so it may exceed 2^63).
    pub sales_cents: i128,
    /// `sales_cents / paid_orders`, rounded to the nearest cent; 0 without paid orders.
    pub average_order_value_cents: i64,
}

impl PeriodFigures {
    fn add(&mut self, orders: i64, paid_orders: i64, cancelled_orders: i64, sales_cents: i128) {
        self.orders += orders;
        self.paid_orders += paid_orders;
        self.cancelled_orders += cancelled_orders;
        self.sales_cents += sales_cents;
        let paid = i128::from(self.paid_orders);
        // An average is at most the largest order total, which fits 64 bits.
        self.average_order_value_cents =
            if paid > 0 { i64::try_from((self.sales_cents + paid / 2) / paid).unwrap_or(i64::MAX) } else { 0 };
    }
}

/// A product's part in the paid orders of the range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TopProduct {
    /// The product.
    pub product_id: i64,
    /// Its current name (or the name it was sold under, if since deleted).
    pub name: String,
    /// Units sold.
    pub units: i64,
    /// Revenue from those units, in minor units (exact, 128 bits).
    pub revenue_cents: i128,
}

#[derive(sqlx::FromRow)]
struct TopProductRow {
    product_id: i64,
    name: String,
    units: i64,
    revenue_billions: i64,
    revenue_rest: i64,
}

/// Percentiles of a lead time over the orders that made the move.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LeadTime {
    /// Orders that made the move.
    pub orders: i64,
    /// Median, in seconds (nearest rank); null without orders.
    pub p50_seconds: Option<f64>,
    /// 95th percentile, in seconds (nearest rank); null without orders.
    pub p95_seconds: Option<f64>,
}

impl LeadTime {
    fn from_durations(mut durations_ms: Vec<i64>) -> LeadTime {
        durations_ms.sort_unstable();
        let rank = |p: f64| -> Option<f64> {
            let n = durations_ms.len();
            if n == 0 {
                return None;
            }
            let index = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            durations_ms.get(index).map(|ms| ms_to_seconds(*ms))
        };
        LeadTime {
            orders: i64::try_from(durations_ms.len()).unwrap_or(i64::MAX),
            p50_seconds: rank(0.50),
            p95_seconds: rank(0.95),
        }
    }
}

/// Everything on `GET /admin/reports`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SalesReport {
    /// First instant covered (RFC 3339).
    pub from: String,
    /// First instant not covered (RFC 3339).
    pub to: String,
    /// Row grouping.
    pub group_by: GroupBy,
    /// One row per period, empty periods included.
    pub periods: Vec<PeriodFigures>,
    /// The whole range.
    pub totals: PeriodFigures,
    /// Best sellers by units (paid orders), at most 10.
    pub top_products_by_units: Vec<TopProduct>,
    /// Best sellers by revenue (paid orders), at most 10.
    pub top_products_by_revenue: Vec<TopProduct>,
    /// Cancelled orders by reason (`out_of_stock`, `payment_declined`, …).
    pub cancellations_by_reason: BTreeMap<String, i64>,
    /// From placing an order (pending) to its confirmation.
    pub pending_to_confirmed: LeadTime,
    /// From confirmation to delivery.
    pub confirmed_to_delivered: LeadTime,
}

/// Builds the report for `range`.
pub async fn sales_report(conn: &mut DbConn, range: &ReportRange) -> Result<SalesReport, sqlx::Error> {
    let (from_ms, to_ms) = (range.from_ms, range.to_ms);
    // Per-day figures from the database; weeks and months are folded here.
    let days: Vec<(i64, i64, i64, i64, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select created_at - (created_at % {DAY_MS}) as day, count(*),
                coalesce(sum(case when status in {PAID_STATUSES_SQL} then 1 else 0 end), 0),
                coalesce(sum(case when status = 'cancelled' then 1 else 0 end), 0),
                {}
         from orders where created_at >= $1 and created_at < $2
         group by created_at - (created_at % {DAY_MS})",
        money_sum(&format!("case when status in {PAID_STATUSES_SQL} then total_cents else 0 end"))
    )))
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(&mut *conn)
    .await?;
    let mut periods: Vec<PeriodFigures> = range
        .periods()
        .into_iter()
        .map(|(period, start_ms, end_ms)| PeriodFigures {
            period,
            start: format_ms(start_ms),
            end: format_ms(end_ms),
            ..Default::default()
        })
        .collect();
    let bounds: Vec<i64> = range.periods().into_iter().map(|(_, start_ms, _)| start_ms).collect();
    let mut totals = PeriodFigures {
        period: "total".into(),
        start: format_ms(from_ms),
        end: format_ms(to_ms),
        ..Default::default()
    };
    for (day_ms, orders, paid, cancelled, sales_billions, sales_rest) in days {
        let sales_cents = money_from_parts(sales_billions, sales_rest);
        // The period holding this day: the last whose start is at or before it
        // (the first period may start after midnight of the range's first day).
        let index = bounds.partition_point(|start| *start <= day_ms.max(from_ms)).saturating_sub(1);
        if let Some(period) = periods.get_mut(index) {
            period.add(orders, paid, cancelled, sales_cents);
        }
        totals.add(orders, paid, cancelled, sales_cents);
    }

    let top = |order_by: &str| {
        format!(
            "select i.product_id, coalesce(max(p.name), max(i.name)) as name,
                    cast(sum(i.quantity) as bigint) as units,
                    cast(sum(i.line_total_cents / 1000000000) as bigint) as revenue_billions,
                    cast(sum(i.line_total_cents % 1000000000) as bigint) as revenue_rest
             from order_items i join orders o on o.id = i.order_id left join products p on p.id = i.product_id
             where o.status in {PAID_STATUSES_SQL} and o.created_at >= $1 and o.created_at < $2
             group by i.product_id order by {order_by}, i.product_id limit $3"
        )
    };
    let mut top_products = Vec::new();
    for order_by in ["units desc", "revenue_billions desc, revenue_rest desc"] {
        let rows: Vec<TopProductRow> = sqlx::query_as(sqlx::AssertSqlSafe(top(order_by)))
            .bind(from_ms)
            .bind(to_ms)
            .bind(TOP_PRODUCTS)
            .fetch_all(&mut *conn)
            .await?;
        top_products.push(
            rows.into_iter()
                .map(|row| TopProduct {
                    product_id: row.product_id,
                    name: row.name,
                    units: row.units,
                    revenue_cents: money_from_parts(row.revenue_billions, row.revenue_rest),
                })
                .collect::<Vec<_>>(),
        );
    }
    let top_products_by_revenue = top_products.pop().unwrap_or_default();
    let top_products_by_units = top_products.pop().unwrap_or_default();

    let cancellations_by_reason: BTreeMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "select coalesce(cancel_reason, 'unknown'), count(*) from orders
         where status = 'cancelled' and created_at >= $1 and created_at < $2 group by 1",
    )
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();

    let to_confirmed: Vec<i64> = sqlx::query_scalar(
        "select waited from (
             select (select min(h.at) from order_status_history h
                     where h.order_id = o.id and h.to_status = 'confirmed') - o.created_at as waited
             from orders o where o.created_at >= $1 and o.created_at < $2) as lead_times
         where waited is not null",
    )
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(&mut *conn)
    .await?;
    let to_delivered: Vec<i64> = sqlx::query_scalar(
        "select waited from (
             select (select min(h.at) from order_status_history h where h.order_id = o.id and h.to_status = 'delivered')
                  - (select min(h.at) from order_status_history h where h.order_id = o.id and h.to_status = 'confirmed')
                    as waited
             from orders o where o.created_at >= $1 and o.created_at < $2 and o.status = 'delivered') as lead_times
         where waited is not null",
    )
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(&mut *conn)
    .await?;

    Ok(SalesReport {
        from: format_ms(from_ms),
        to: format_ms(to_ms),
        group_by: range.group_by,
        periods,
        totals,
        top_products_by_units,
        top_products_by_revenue,
        cancellations_by_reason,
        pending_to_confirmed: LeadTime::from_durations(to_confirmed),
        confirmed_to_delivered: LeadTime::from_durations(to_delivered),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_174_716_123; // 2025-11-26T16:31:56.123Z, a Wednesday

    fn range(from: Option<&str>, to: Option<&str>, group_by: GroupBy) -> ReportRange {
        ReportRange::parse(from, to, Some(group_by), NOW).expect("valid range")
    }

    #[test]
    fn dates_cover_whole_utc_days_and_timestamps_their_instant() {
        let r = range(Some("2025-11-01"), Some("2025-11-30"), GroupBy::Day);
        assert_eq!(format_ms(r.from_ms), "2025-11-01T00:00:00.000Z");
        assert_eq!(format_ms(r.to_ms), "2025-12-01T00:00:00.000Z");
        let r = range(Some("2025-11-01T10:00:00+02:00"), Some("2025-11-02T00:00:00Z"), GroupBy::Day);
        assert_eq!(format_ms(r.from_ms), "2025-11-01T08:00:00.000Z");
        assert_eq!(format_ms(r.to_ms), "2025-11-02T00:00:00.001Z");
    }

    #[test]
    fn defaults_are_the_last_30_days_by_day() {
        let r = ReportRange::parse(None, None, None, NOW).expect("valid");
        assert_eq!(r.group_by, GroupBy::Day);
        assert_eq!(format_ms(r.from_ms), "2025-10-28T00:00:00.000Z");
        assert_eq!(r.periods().len(), 30);
    }

    #[test]
    fn bad_dates_reversed_and_huge_ranges_are_refused() {
        let field = |from: &str, to: &str| {
            ReportRange::parse(Some(from), Some(to), None, NOW).expect_err("invalid").0[0].field.clone()
        };
        assert_eq!(field("2025-13-01", "2025-12-01"), "from");
        assert_eq!(field("2025-11-01", "yesterday"), "to");
        assert_eq!(field("2025-11-02", "2025-11-01"), "from");
        assert_eq!(field("2015-01-01", "2025-01-01"), "to");
        assert!(ReportRange::parse(Some("2020-01-01"), Some("2024-12-31"), None, NOW).is_ok());
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first_clipped_to_the_range() {
        let weeks = range(Some("2025-11-26"), Some("2025-12-08"), GroupBy::Week).periods();
        let labels: Vec<&str> = weeks.iter().map(|(label, _, _)| label.as_str()).collect();
        assert_eq!(labels, ["2025-W48", "2025-W49", "2025-W50"]);
        assert_eq!(format_ms(weeks[0].1), "2025-11-26T00:00:00.000Z", "clipped to from");
        assert_eq!(format_ms(weeks[1].1), "2025-12-01T00:00:00.000Z", "a Monday");
        assert_eq!(format_ms(weeks[2].2), "2025-12-09T00:00:00.000Z", "clipped to to");
        let months = range(Some("2025-01-31"), Some("2025-03-01"), GroupBy::Month).periods();
        let labels: Vec<&str> = months.iter().map(|(label, _, _)| label.as_str()).collect();
        assert_eq!(labels, ["2025-01", "2025-02", "2025-03"]);
    }

    #[test]
    fn lead_time_percentiles_use_the_nearest_rank() {
        let lead = LeadTime::from_durations((1..=100).map(|s| s * 1000).collect());
        assert_eq!((lead.orders, lead.p50_seconds, lead.p95_seconds), (100, Some(50.0), Some(95.0)));
        assert_eq!(LeadTime::from_durations(Vec::new()).p50_seconds, None);
    }
}
