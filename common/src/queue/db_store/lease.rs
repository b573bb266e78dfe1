//! Leases: claiming due jobs, recording results under the fencing token,
//! extending and returning leases, and rescuing jobs whose lease expired.
//!
//! The writes run inside a unit of work (the caller's transaction); the
//! claim's locking is the backend's (see `queue::sqlite`, `queue::postgres`).

use crate::db::Pool;

use crate::db::{Backend, DbConn, now_ms};
use crate::queue::job::{ClaimedJob, JobId, Lease};
use crate::queue::store::{Ack, AckResult, ClaimRequest, Release, RescuedJob, Resolution};
use crate::queue::{postgres, sqlite};
use crate::store::sql::{Bind, Statement};

#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: i64,
    job_type: String,
    payload: String,
    attempts: i64,
    lease_token: i64,
    created_at: i64,
    run_at: i64,
    last_error: Option<String>,
    /// The claim order's first key: the job's order, 0 for none.
    claim_order: i64,
}

/// A JSON array of strings, for the job-type list of a claim, which keeps
/// the SQL static whatever the list's length.
fn json_list(values: &[String]) -> String {
    serde_json::Value::from(values.to_vec()).to_string()
}

pub(super) async fn claim(conn: &mut DbConn, request: &ClaimRequest) -> Result<Vec<ClaimedJob>, sqlx::Error> {
    let lease_ms = i64::try_from(request.lease.as_millis()).unwrap_or(i64::MAX / 2);
    // The clock is read inside the transaction: on SQLite it holds the
    // write lock, so a claim that waited for the lock does not hand out a
    // lease already partly (or wholly) expired.
    let now = now_ms();
    let sql = match Backend::of(conn) {
        Backend::Sqlite => sqlite::CLAIM,
        Backend::Postgres => postgres::CLAIM,
    };
    let mut rows: Vec<ClaimRow> = sqlx::query_as(sql)
        .bind(&request.worker_id)
        .bind(now.saturating_add(lease_ms))
        .bind(now)
        .bind(json_list(&request.job_types))
        .bind(i64::from(request.limit))
        .fetch_all(&mut *conn)
        .await?;
    // RETURNING gives no order; hand jobs out in the claim's order.
    rows.sort_by_key(|row| (row.claim_order, row.id));
    let jobs: Vec<ClaimedJob> = rows
        .into_iter()
        .map(|row| ClaimedJob {
            lease: Lease { job_id: JobId(row.id), token: row.lease_token },
            job_type: row.job_type,
            payload: row.payload,
            attempt: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            created_at_ms: row.created_at,
            run_at_ms: row.run_at,
            claimed_at_ms: now,
            last_error: row.last_error,
        })
        .collect();
    Ok(jobs)
}

pub(super) async fn has_due_jobs(pool: &Pool, backend: Backend, job_types: &[String]) -> Result<bool, sqlx::Error> {
    let sql = match backend {
        Backend::Sqlite => sqlite::HAS_DUE,
        Backend::Postgres => postgres::HAS_DUE,
    };
    let due: Option<i64> =
        sqlx::query_scalar(sql).bind(now_ms()).bind(json_list(job_types)).fetch_optional(pool).await?;
    Ok(due.is_some())
}

/// Most acks one statement carries (well under SQLite's parameter limit).
const ACKS_PER_STATEMENT: usize = 500;

pub(super) async fn ack(tx: &mut DbConn, acks: &[Ack]) -> Result<Vec<AckResult>, sqlx::Error> {
    let mut results = Vec::with_capacity(acks.len());
    for chunk in acks.chunks(ACKS_PER_STATEMENT) {
        results.extend(ack_chunk(tx, chunk).await?);
    }
    Ok(results)
}

/// Records a group of results with two statements whatever its size: one
/// update of the jobs whose lease is still current (the fencing check),
/// and one insert of those jobs' attempt rows.
async fn ack_chunk(tx: &mut DbConn, acks: &[Ack]) -> Result<Vec<AckResult>, sqlx::Error> {
    let now = now_ms();
    let mut update = Statement::new("with acked (id, token, status, run_at, error, finished_at, refund) as (values ");
    for (index, ack) in acks.iter().enumerate() {
        let (status, run_at, error, finished_at, refund) = match &ack.resolution {
            Resolution::Succeeded => ("succeeded", None, None, Some(now), 0),
            Resolution::Retry { run_at_ms, error, counted } => {
                ("pending", Some(*run_at_ms), Some(error.clone()), None, i64::from(!counted))
            }
            Resolution::Dead { error } => ("dead", None, Some(error.clone()), Some(now), 0),
        };
        if index > 0 {
            update.push(", ");
        }
        let values = [
            update.bind(Bind::Int(ack.lease.job_id.0)),
            update.bind(Bind::Int(ack.lease.token)),
            update.bind(Bind::Text(status.to_owned())),
            update.bind(Bind::OptInt(run_at)),
            update.bind(Bind::OptText(error)),
            update.bind(Bind::OptInt(finished_at)),
            update.bind(Bind::Int(refund)),
        ];
        update.push(&format!("({})", values.join(", ")));
    }
    let now_param = update.bind(Bind::Int(now));
    update.push(&format!(
        ") update jobs
         set status = acked.status, run_at = coalesce(acked.run_at, jobs.run_at),
             attempts = case when jobs.attempts > acked.refund then jobs.attempts - acked.refund else 0 end,
             last_error = coalesce(acked.error, jobs.last_error), finished_at = acked.finished_at,
             lease_owner = null, lease_expires_at = null, updated_at = {now_param}
         from acked
         where jobs.id = acked.id and jobs.lease_token = acked.token and jobs.status = 'running'
         returning jobs.id"
    ));
    let applied: Vec<i64> = update.query_scalar().fetch_all(&mut *tx).await?;
    let mut attempts = Statement::new(
        "insert into job_attempts
             (job_id, attempt, lease_token, worker_id, started_at, finished_at, duration_ms, outcome, error)
         values ",
    );
    let mut results = Vec::with_capacity(acks.len());
    let mut rows = 0;
    for ack in acks {
        if !applied.contains(&ack.lease.job_id.0) {
            results.push(AckResult::LeaseLost);
            continue;
        }
        results.push(AckResult::Applied);
        let (outcome, error) = match &ack.resolution {
            Resolution::Succeeded => ("succeeded", None),
            Resolution::Retry { error, .. } => ("retry", Some(error.clone())),
            Resolution::Dead { error } => ("dead", Some(error.clone())),
        };
        if rows > 0 {
            attempts.push(", ");
        }
        rows += 1;
        let values = [
            attempts.bind(Bind::Int(ack.lease.job_id.0)),
            attempts.bind(Bind::Int(i64::from(ack.attempt))),
            attempts.bind(Bind::Int(ack.lease.token)),
            attempts.bind(Bind::Text(ack.worker_id.clone())),
            attempts.bind(Bind::Int(ack.started_at_ms)),
            attempts.bind(Bind::Int(ack.finished_at_ms)),
            attempts.bind(Bind::Int(ack.finished_at_ms.saturating_sub(ack.started_at_ms).max(0))),
            attempts.bind(Bind::Text(outcome.to_owned())),
            attempts.bind(Bind::OptText(error)),
        ];
        attempts.push(&format!("({})", values.join(", ")));
    }
    if rows > 0 {
        attempts.query().execute(&mut *tx).await?;
    }
    Ok(results)
}

struct AttemptRow<'a> {
    lease: Lease,
    attempt: u32,
    worker_id: &'a str,
    started_at_ms: i64,
    finished_at_ms: i64,
    outcome: &'static str,
    error: Option<&'a str>,
}

async fn insert_attempt(conn: &mut DbConn, row: &AttemptRow<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into job_attempts
             (job_id, attempt, lease_token, worker_id, started_at, finished_at, duration_ms,
              outcome, error)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(row.lease.job_id.0)
    .bind(i64::from(row.attempt))
    .bind(row.lease.token)
    .bind(row.worker_id)
    .bind(row.started_at_ms)
    .bind(row.finished_at_ms)
    .bind(row.finished_at_ms.saturating_sub(row.started_at_ms).max(0))
    .bind(row.outcome)
    .bind(row.error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Extends every still-current lease in one statement per 1,000 leases;
/// returns the leases that were lost.
pub(super) async fn extend(tx: &mut DbConn, leases: &[Lease], expires_at_ms: i64) -> Result<Vec<Lease>, sqlx::Error> {
    let now = now_ms();
    let mut kept = Vec::with_capacity(leases.len());
    for chunk in leases.chunks(1000) {
        let mut update = Statement::new("update jobs set lease_expires_at = ");
        update.push_bind(Bind::Int(expires_at_ms)).push(", updated_at = ").push_bind(Bind::Int(now));
        update.push(" where status = 'running' and (id, lease_token) in (values ");
        for (index, lease) in chunk.iter().enumerate() {
            if index > 0 {
                update.push(", ");
            }
            let (id, token) = (update.bind(Bind::Int(lease.job_id.0)), update.bind(Bind::Int(lease.token)));
            update.push(&format!("({id}, {token})"));
        }
        update.push(") returning id, lease_token");
        kept.extend(update.query_as::<(i64, i64)>().fetch_all(&mut *tx).await?);
    }
    Ok(leases.iter().filter(|lease| !kept.contains(&(lease.job_id.0, lease.token))).copied().collect())
}

pub(super) async fn release(tx: &mut DbConn, releases: &[Release]) -> Result<u64, sqlx::Error> {
    let now = now_ms();
    let mut released = 0;
    for release in releases {
        // The attempt is given back: shutting down is not the job's fault.
        let updated = sqlx::query(
            "update jobs
             set status = 'pending', attempts = case when attempts > 0 then attempts - 1 else 0 end, lease_owner = null,
                 lease_expires_at = null, updated_at = $3
             where id = $1 and lease_token = $2 and status = 'running'",
        )
        .bind(release.lease.job_id.0)
        .bind(release.lease.token)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            continue;
        }
        released += 1;
        if let Some(started_at_ms) = release.started_at_ms {
            insert_attempt(
                tx,
                &AttemptRow {
                    lease: release.lease,
                    attempt: release.attempt,
                    worker_id: &release.worker_id,
                    started_at_ms,
                    finished_at_ms: now,
                    outcome: "released",
                    error: Some("worker shut down before the job finished"),
                },
            )
            .await?;
        }
    }
    Ok(released)
}

#[derive(sqlx::FromRow)]
struct ExpiredRow {
    id: i64,
    job_type: String,
    attempts: i64,
    lease_token: i64,
    lease_owner: Option<String>,
    claimed_at: Option<i64>,
}

/// A cheap read: is any lease expired?
pub(super) async fn any_expired(pool: &Pool, now_ms: i64) -> Result<bool, sqlx::Error> {
    let expired: Option<i64> =
        sqlx::query_scalar("select 1 from jobs where status = 'running' and lease_expires_at < $1 limit 1")
            .bind(now_ms)
            .fetch_optional(pool)
            .await?;
    Ok(expired.is_some())
}

pub(super) async fn rescue_expired(tx: &mut DbConn, now_ms: i64) -> Result<Vec<RescuedJob>, sqlx::Error> {
    let sql = match Backend::of(tx) {
        Backend::Sqlite => sqlite::EXPIRED,
        Backend::Postgres => postgres::EXPIRED,
    };
    let expired: Vec<ExpiredRow> = sqlx::query_as(sql).bind(now_ms).fetch_all(&mut *tx).await?;
    let mut rescued = Vec::with_capacity(expired.len());
    for row in expired {
        let lost_by = row.lease_owner.unwrap_or_default();
        let error = format!("lease held by worker {lost_by} expired");
        // The attempt still counts, so a job that kills its worker every time
        // ends up dead instead of looping.
        let updated = sqlx::query(
            "update jobs
             set status = 'pending', lease_owner = null, lease_expires_at = null,
                 last_error = $3, updated_at = $4
             where id = $1 and lease_token = $2 and status = 'running'",
        )
        .bind(row.id)
        .bind(row.lease_token)
        .bind(&error)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            // Another process rescued it first.
            continue;
        }
        insert_attempt(
            tx,
            &AttemptRow {
                lease: Lease { job_id: JobId(row.id), token: row.lease_token },
                attempt: u32::try_from(row.attempts).unwrap_or(u32::MAX),
                worker_id: &lost_by,
                started_at_ms: row.claimed_at.unwrap_or(now_ms),
                finished_at_ms: now_ms,
                outcome: "abandoned",
                error: Some(&error),
            },
        )
        .await?;
        rescued.push(RescuedJob { job_id: JobId(row.id), job_type: row.job_type, lost_by });
    }
    Ok(rescued)
}
