//! The dashboard: how is business and what is the queue doing, in one read.

use std::collections::BTreeMap;

use crate::db::DbConn;
use serde::Serialize;

use super::{DAY_MS, PAID_STATUSES_SQL, money_from_parts, money_sum, ms_to_seconds};
use crate::domain::order::OrderStatus;
use crate::time::format_ms;

/// Most low-stock products listed; `low_stock_products` counts them all.
pub const LOW_STOCK_LIST_LIMIT: i64 = 100;

/// A product at or below the low-stock threshold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct LowStockProduct {
    /// The product.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its SKU, if it has one.
    pub sku: Option<String>,
    /// Units on hand.
    pub stock: i64,
}

/// One job type's jobs by console state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobTypeCounts {
    /// The job type.
    pub job_type: String,
    /// Waiting for their first attempt (`status = pending`, `attempts = 0`).
    pub pending: i64,
    /// Scheduled for a retry: pending again after at least one attempt
    /// (transient failure with backoff, or rescued from an expired lease).
    pub retrying: i64,
    /// Held by a worker under a lease.
    pub running: i64,
    /// Failed for good; waiting for an operator (retry or discard).
    pub dead: i64,
    /// Age of the oldest due pending or retrying job, in seconds; 0 when none waits.
    pub oldest_pending_age_seconds: f64,
    /// Jobs that succeeded in the last 60 s.
    pub succeeded_last_minute: i64,
    /// Jobs that became dead in the last 60 s.
    pub dead_last_minute: i64,
}

/// The queue at a glance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct QueueOverview {
    /// Per job type (every registered type, plus any other type found in the table).
    pub job_types: Vec<JobTypeCounts>,
    /// Pending jobs waiting for their first attempt, all types.
    pub pending: i64,
    /// Jobs scheduled for a retry, all types.
    pub retrying: i64,
    /// Running jobs, all types.
    pub running: i64,
    /// Dead jobs, all types.
    pub dead: i64,
    /// Age of the oldest due job waiting to run, in seconds, all types.
    pub oldest_pending_age_seconds: f64,
    /// Jobs that finished (succeeded or dead) in the last 60 s.
    pub finished_last_minute: i64,
}

/// Everything on `GET /admin/dashboard`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Dashboard {
    /// When the figures were read (RFC 3339).
    pub generated_at: String,
    /// Accounts in all.
    pub users: i64,
    /// Customer accounts.
    pub customers: i64,
    /// Admin accounts.
    pub admins: i64,
    /// Products in the catalogue (deleted ones excluded).
    pub products: i64,
    /// Products with no stock.
    pub out_of_stock_products: i64,
    /// A product is low on stock at or below this many units.
    pub low_stock_threshold: i64,
    /// How many products are low on stock.
    pub low_stock_products: i64,
    /// The low-stock products, fewest units first (at most 100).
    pub low_stock: Vec<LowStockProduct>,
    /// Orders in all.
    pub orders: i64,
    /// Orders by status; every status is present.
    pub orders_by_status: BTreeMap<String, i64>,
    /// Sum of `total_cents` of confirmed, shipped and delivered orders, in
    /// minor units (exact: computed in 128 bits, so it may exceed 2^63).
    /// Adds currencies together: see `revenue_by_currency` when the shop
    /// sells in more than one.
    pub revenue_cents: i128,
    /// Revenue per currency, in minor units.
    pub revenue_by_currency: BTreeMap<String, i128>,
    /// Orders placed since midnight UTC.
    pub orders_today: i64,
    /// Revenue of orders placed since midnight UTC that are confirmed or later, in minor units.
    pub revenue_today_cents: i128,
    /// The job queue.
    pub queue: QueueOverview,
}

/// Reads the dashboard. `job_types` are the registered job types, listed even
/// when they have no jobs.
pub async fn dashboard(
    conn: &mut DbConn,
    low_stock_threshold: i64,
    job_types: &[&str],
    now_ms: i64,
) -> Result<Dashboard, sqlx::Error> {
    let (users, customers, admins): (i64, i64, i64) = sqlx::query_as(
        "select count(*), coalesce(sum(case when role = 'customer' then 1 else 0 end), 0),
                coalesce(sum(case when role = 'admin' then 1 else 0 end), 0)
         from users",
    )
    .fetch_one(&mut *conn)
    .await?;
    let (products, out_of_stock_products, low_stock_products): (i64, i64, i64) = sqlx::query_as(
        "select count(*), coalesce(sum(case when stock = 0 then 1 else 0 end), 0),
                coalesce(sum(case when stock <= $1 then 1 else 0 end), 0)
         from products where deleted_at is null",
    )
    .bind(low_stock_threshold)
    .fetch_one(&mut *conn)
    .await?;
    let low_stock: Vec<LowStockProduct> = sqlx::query_as(
        "select id, name, sku, stock from products
         where deleted_at is null and stock <= $1 order by stock, id limit $2",
    )
    .bind(low_stock_threshold)
    .bind(LOW_STOCK_LIST_LIMIT)
    .fetch_all(&mut *conn)
    .await?;

    let mut orders_by_status: BTreeMap<String, i64> =
        OrderStatus::ALL.iter().map(|status| (status.as_str().to_owned(), 0)).collect();
    let counted: Vec<(String, i64)> =
        sqlx::query_as("select status, count(*) from orders group by status").fetch_all(&mut *conn).await?;
    for (status, count) in counted {
        orders_by_status.insert(status, count);
    }
    let orders = orders_by_status.values().sum();
    let revenue_by_currency: BTreeMap<String, i128> =
        sqlx::query_as::<_, (String, i64, i64)>(sqlx::AssertSqlSafe(format!(
            "select currency, {} from orders where status in {PAID_STATUSES_SQL} group by currency",
            money_sum("total_cents")
        )))
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|(currency, billions, rest)| (currency, money_from_parts(billions, rest)))
        .collect();
    let revenue_cents = revenue_by_currency.values().sum();
    let midnight_ms = now_ms - now_ms.rem_euclid(DAY_MS);
    let (orders_today, billions, rest): (i64, i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select count(*), {} from orders where created_at >= $1",
        money_sum(&format!("case when status in {PAID_STATUSES_SQL} then total_cents else 0 end"))
    )))
    .bind(midnight_ms)
    .fetch_one(&mut *conn)
    .await?;
    let revenue_today_cents = money_from_parts(billions, rest);

    Ok(Dashboard {
        generated_at: format_ms(now_ms),
        users,
        customers,
        admins,
        products,
        out_of_stock_products,
        low_stock_threshold,
        low_stock_products,
        low_stock,
        orders,
        orders_by_status,
        revenue_cents,
        revenue_by_currency,
        orders_today,
        revenue_today_cents,
        queue: queue_overview(conn, job_types, now_ms).await?,
    })
}

/// Jobs by type and console state, the oldest waiting job's age, and what
/// finished in the last minute. Each query reads one state's partial index,
/// so the cost follows the live jobs, not the finished ones kept for retention.
pub async fn queue_overview(conn: &mut DbConn, job_types: &[&str], now_ms: i64) -> Result<QueueOverview, sqlx::Error> {
    let mut by_type: BTreeMap<String, JobTypeCounts> = job_types
        .iter()
        .map(|job_type| {
            ((*job_type).to_owned(), JobTypeCounts { job_type: (*job_type).to_owned(), ..Default::default() })
        })
        .collect();

    let waiting: Vec<(String, i64, i64, Option<i64>)> = sqlx::query_as(
        "select job_type, coalesce(sum(case when attempts = 0 then 1 else 0 end), 0),
                coalesce(sum(case when attempts > 0 then 1 else 0 end), 0),
                min(case when run_at <= $1 then run_at end)
         from jobs where status = 'pending' group by job_type",
    )
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await?;
    for (job_type, pending, retrying, oldest_due) in waiting {
        let counts = counts_for(&mut by_type, job_type);
        counts.pending = pending;
        counts.retrying = retrying;
        counts.oldest_pending_age_seconds =
            oldest_due.map_or(0.0, |run_at| ms_to_seconds(now_ms.saturating_sub(run_at)));
    }
    for (state, sql) in [
        ("running", "select job_type, count(*) from jobs where status = 'running' group by job_type"),
        ("dead", "select job_type, count(*) from jobs where status = 'dead' group by job_type"),
    ] {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql).fetch_all(&mut *conn).await?;
        for (job_type, count) in rows {
            let counts = counts_for(&mut by_type, job_type);
            if state == "running" {
                counts.running = count;
            } else {
                counts.dead = count;
            }
        }
    }
    let since_ms = now_ms - 60_000;
    let succeeded: Vec<(String, i64)> = sqlx::query_as(
        "select job_type, coalesce(sum(case when status = 'succeeded' then 1 else 0 end), 0) from jobs
         where status in ('succeeded', 'discarded') and finished_at >= $1 group by job_type",
    )
    .bind(since_ms)
    .fetch_all(&mut *conn)
    .await?;
    for (job_type, count) in succeeded {
        counts_for(&mut by_type, job_type).succeeded_last_minute = count;
    }
    let died: Vec<(String, i64)> = sqlx::query_as(
        "select job_type, count(*) from jobs where status = 'dead' and finished_at >= $1 group by job_type",
    )
    .bind(since_ms)
    .fetch_all(&mut *conn)
    .await?;
    for (job_type, count) in died {
        counts_for(&mut by_type, job_type).dead_last_minute = count;
    }

    let job_types: Vec<JobTypeCounts> = by_type.into_values().collect();
    Ok(QueueOverview {
        pending: job_types.iter().map(|t| t.pending).sum(),
        retrying: job_types.iter().map(|t| t.retrying).sum(),
        running: job_types.iter().map(|t| t.running).sum(),
        dead: job_types.iter().map(|t| t.dead).sum(),
        oldest_pending_age_seconds: job_types.iter().map(|t| t.oldest_pending_age_seconds).fold(0.0, f64::max),
        finished_last_minute: job_types.iter().map(|t| t.succeeded_last_minute + t.dead_last_minute).sum(),
        job_types,
    })
}

fn counts_for(by_type: &mut BTreeMap<String, JobTypeCounts>, job_type: String) -> &mut JobTypeCounts {
    by_type.entry(job_type.clone()).or_insert_with(|| JobTypeCounts { job_type, ..Default::default() })
}
