//! Reads only the operator console needs (the JSON routes do not): jobs
//! finished and failed per minute, the worker processes seen recently, a
//! job's attempts with their fencing tokens, and orders found by number or
//! by the customer's e-mail address.

use serde::Serialize;

use crate::db::DbConn;
use crate::domain::email_key::key_of;

/// Milliseconds in a minute.
const MINUTE_MS: i64 = 60_000;

/// Job attempts that ended in one minute.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MinuteFigures {
    /// Start of the minute (Unix ms).
    pub minute_start_ms: i64,
    /// Attempts that succeeded.
    pub succeeded: i64,
    /// Attempts that failed (`retry` or `dead`).
    pub failed: i64,
}

/// Attempts ended per minute over the last `minutes` minutes, oldest
/// first, one entry per minute (quiet minutes are zeros).
pub async fn throughput(conn: &mut DbConn, now_ms: i64, minutes: i64) -> Result<Vec<MinuteFigures>, sqlx::Error> {
    let since_ms = now_ms - minutes * MINUTE_MS;
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "select (finished_at - $1) / 60000,
                coalesce(sum(case when outcome = 'succeeded' then 1 else 0 end), 0),
                coalesce(sum(case when outcome in ('retry', 'dead') then 1 else 0 end), 0)
         from job_attempts where finished_at >= $1 group by (finished_at - $1) / 60000",
    )
    .bind(since_ms)
    .fetch_all(&mut *conn)
    .await?;
    let mut figures: Vec<MinuteFigures> = (0..minutes)
        .map(|minute| MinuteFigures { minute_start_ms: since_ms + minute * MINUTE_MS, ..Default::default() })
        .collect();
    for (minute, succeeded, failed) in rows {
        let Some(slot) = usize::try_from(minute).ok().and_then(|m| figures.get_mut(m)) else { continue };
        slot.succeeded += succeeded;
        slot.failed += failed;
    }
    Ok(figures)
}

/// A worker process the queue has heard from recently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkerSeen {
    /// Its id (`KASSA_WORKER_ID`, or the generated one).
    pub worker_id: String,
    /// Its last sign of life (Unix ms): an attempt ending, or a claim or
    /// lease heartbeat on a job it holds.
    pub last_seen_ms: i64,
    /// Jobs it holds under a lease now.
    pub jobs_running: i64,
}

/// Workers that ended an attempt since `since_ms` or hold a job now, most
/// recently seen first. There is no worker table: a worker is known by its
/// leases and attempts, so an idle one drops out once its last attempt is
/// older than `since_ms`.
pub async fn workers_seen(conn: &mut DbConn, since_ms: i64) -> Result<Vec<WorkerSeen>, sqlx::Error> {
    let finished: Vec<(String, i64)> = sqlx::query_as(
        "select worker_id, max(finished_at) from job_attempts where finished_at >= $1 group by worker_id",
    )
    .bind(since_ms)
    .fetch_all(&mut *conn)
    .await?;
    let holding: Vec<(String, i64, i64)> = sqlx::query_as(
        "select lease_owner, count(*), max(updated_at) from jobs
         where status = 'running' and lease_owner is not null group by lease_owner",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut workers: Vec<WorkerSeen> = finished
        .into_iter()
        .map(|(worker_id, last_seen_ms)| WorkerSeen { worker_id, last_seen_ms, jobs_running: 0 })
        .collect();
    for (worker_id, jobs_running, heartbeat_ms) in holding {
        match workers.iter_mut().find(|w| w.worker_id == worker_id) {
            Some(worker) => {
                worker.jobs_running = jobs_running;
                worker.last_seen_ms = worker.last_seen_ms.max(heartbeat_ms);
            }
            None => workers.push(WorkerSeen { worker_id, last_seen_ms: heartbeat_ms, jobs_running }),
        }
    }
    workers.sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then_with(|| a.worker_id.cmp(&b.worker_id)));
    Ok(workers)
}

/// One attempt with the fencing token its lease carried: a later lease on
/// the same job always has a larger token, so a token that repeats or goes
/// back would show a write by a holder that had lost the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct FencedAttempt {
    /// The attempt number.
    pub attempt: i64,
    /// The lease's fencing token.
    pub lease_token: i64,
    /// The worker that ran it.
    pub worker_id: String,
    /// When it started (Unix ms).
    pub started_at: i64,
    /// How long it ran, in milliseconds.
    pub duration_ms: i64,
    /// `succeeded`, `retry`, `dead`, `released` or `abandoned`.
    pub outcome: String,
    /// The failure, if any.
    pub error: Option<String>,
}

/// A job's attempts, oldest first, with their fencing tokens.
pub async fn fenced_attempts(conn: &mut DbConn, job_id: i64) -> Result<Vec<FencedAttempt>, sqlx::Error> {
    sqlx::query_as(
        "select attempt, lease_token, worker_id, started_at, duration_ms, outcome, error
         from job_attempts where job_id = $1 order by id",
    )
    .bind(job_id)
    .fetch_all(conn)
    .await
}

/// What an operator searches orders by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderSearch {
    /// The newest orders.
    Recent,
    /// One order number.
    Id(i64),
    /// The customer's e-mail address (compared as logins are: case and
    /// Unicode forms folded).
    Email(String),
}

impl OrderSearch {
    /// What the operator typed: a number is an order, anything else an
    /// e-mail address, nothing the newest orders.
    pub fn parse(query: &str) -> OrderSearch {
        let query = query.trim().trim_start_matches('#');
        if query.is_empty() {
            OrderSearch::Recent
        } else if let Ok(id) = query.parse::<i64>() {
            OrderSearch::Id(id)
        } else {
            OrderSearch::Email(query.to_owned())
        }
    }
}

/// An order in the console's search results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OrderHit {
    /// The order number.
    pub id: i64,
    /// The customer.
    pub user_id: i64,
    /// The customer's e-mail address.
    pub email: String,
    /// The order's status.
    pub status: String,
    /// Its total, in minor units.
    pub total_cents: i64,
    /// Its currency.
    pub currency: String,
    /// When it was placed (Unix ms).
    pub created_at: i64,
}

/// Orders matching `search`, newest first, at most `limit`.
pub async fn search_orders(conn: &mut DbConn, search: &OrderSearch, limit: i64) -> Result<Vec<OrderHit>, sqlx::Error> {
    let select = "select o.id, o.user_id, u.email, o.status, o.total_cents, o.currency, o.created_at
                  from orders o join users u on u.id = o.user_id";
    match search {
        OrderSearch::Recent => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{select} order by o.id desc limit $1")))
                .bind(limit)
                .fetch_all(conn)
                .await
        }
        OrderSearch::Id(id) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{select} where o.id = $1"))).bind(id).fetch_all(conn).await
        }
        OrderSearch::Email(email) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{select} where u.email_key = $1 order by o.id desc limit $2")))
                .bind(key_of(email))
                .bind(limit)
                .fetch_all(conn)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_an_order_and_anything_else_an_email() {
        assert_eq!(OrderSearch::parse("  "), OrderSearch::Recent);
        assert_eq!(OrderSearch::parse("#42"), OrderSearch::Id(42));
        assert_eq!(OrderSearch::parse(" 7 "), OrderSearch::Id(7));
        assert_eq!(OrderSearch::parse("Ana@Example.com"), OrderSearch::Email("Ana@Example.com".into()));
    }
}
