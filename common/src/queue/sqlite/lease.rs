//! Leases: claiming due jobs, recording results under the fencing token,
//! extending and returning leases, and rescuing jobs whose lease expired.
//!
//! Each function is one attempt; the caller retries a busy database.

use sqlx::SqlitePool;

use crate::db::{begin_write, now_ms};
use crate::queue::job::{ClaimedJob, JobId, Lease};
use crate::queue::store::{Ack, AckResult, ClaimRequest, Release, RescuedJob, Resolution};

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
}

pub(super) async fn claim(
    pool: &SqlitePool,
    request: &ClaimRequest,
    job_types_json: &str,
) -> Result<Vec<ClaimedJob>, sqlx::Error> {
    let lease_ms = i64::try_from(request.lease.as_millis()).unwrap_or(i64::MAX / 2);
    let mut tx = begin_write(pool).await?;
    // The clock is read once the write lock is held: a claim that waited for
    // the lock must not hand out a lease already partly (or wholly) expired.
    let now = now_ms();
    let rows: Vec<ClaimRow> = sqlx::query_as(
        "update jobs
         set status = 'running', lease_owner = ?1, lease_token = lease_token + 1,
             lease_expires_at = ?2, claimed_at = ?3, attempts = attempts + 1, updated_at = ?3
         where id in (
             select id from jobs
             where status = 'pending' and run_at <= ?3
               and job_type in (select value from json_each(?4))
             order by run_at, id
             limit ?5)
         returning id, job_type, payload, attempts, lease_token, created_at, run_at, last_error",
    )
    .bind(&request.worker_id)
    .bind(now.saturating_add(lease_ms))
    .bind(now)
    .bind(job_types_json)
    .bind(i64::from(request.limit))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut jobs: Vec<ClaimedJob> = rows
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
    // RETURNING gives no order; hand jobs out oldest due first.
    jobs.sort_by_key(|job| (job.run_at_ms, job.lease.job_id));
    Ok(jobs)
}

pub(super) async fn has_due_jobs(pool: &SqlitePool, job_types_json: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (
             select 1 from jobs
             where status = 'pending' and run_at <= ?1
               and job_type in (select value from json_each(?2)))",
    )
    .bind(now_ms())
    .bind(job_types_json)
    .fetch_one(pool)
    .await
}

pub(super) async fn ack(pool: &SqlitePool, acks: &[Ack]) -> Result<Vec<AckResult>, sqlx::Error> {
    let now = now_ms();
    let mut results = Vec::with_capacity(acks.len());
    let mut tx = begin_write(pool).await?;
    for ack in acks {
        let (status, run_at, error, finished_at, outcome) = match &ack.resolution {
            Resolution::Succeeded => ("succeeded", None, None, Some(now), "succeeded"),
            Resolution::Retry { run_at_ms, error } => {
                ("pending", Some(*run_at_ms), Some(error.as_str()), None, "retry")
            }
            Resolution::Dead { error } => ("dead", None, Some(error.as_str()), Some(now), "dead"),
        };
        // The fencing check: only the current lease holder's result counts.
        let updated = sqlx::query(
            "update jobs
             set status = ?3, run_at = coalesce(?4, run_at), last_error = coalesce(?5, last_error),
                 finished_at = ?6, lease_owner = null, lease_expires_at = null, updated_at = ?7
             where id = ?1 and lease_token = ?2 and status = 'running'",
        )
        .bind(ack.lease.job_id.0)
        .bind(ack.lease.token)
        .bind(status)
        .bind(run_at)
        .bind(error)
        .bind(finished_at)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            results.push(AckResult::LeaseLost);
            continue;
        }
        insert_attempt(
            &mut tx,
            &AttemptRow {
                lease: ack.lease,
                attempt: ack.attempt,
                worker_id: &ack.worker_id,
                started_at_ms: ack.started_at_ms,
                finished_at_ms: ack.finished_at_ms,
                outcome,
                error,
            },
        )
        .await?;
        results.push(AckResult::Applied);
    }
    tx.commit().await?;
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

async fn insert_attempt(conn: &mut sqlx::SqliteConnection, row: &AttemptRow<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into job_attempts
             (job_id, attempt, lease_token, worker_id, started_at, finished_at, duration_ms,
              outcome, error)
         values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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

pub(super) async fn extend(pool: &SqlitePool, leases: &[Lease], expires_at_ms: i64) -> Result<Vec<Lease>, sqlx::Error> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let mut lost = Vec::new();
    let mut tx = begin_write(pool).await?;
    for lease in leases {
        let updated = sqlx::query(
            "update jobs set lease_expires_at = ?3, updated_at = ?4
             where id = ?1 and lease_token = ?2 and status = 'running'",
        )
        .bind(lease.job_id.0)
        .bind(lease.token)
        .bind(expires_at_ms)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            lost.push(*lease);
        }
    }
    tx.commit().await?;
    Ok(lost)
}

pub(super) async fn release(pool: &SqlitePool, releases: &[Release]) -> Result<u64, sqlx::Error> {
    if releases.is_empty() {
        return Ok(0);
    }
    let now = now_ms();
    let mut released = 0;
    let mut tx = begin_write(pool).await?;
    for release in releases {
        // The attempt is given back: shutting down is not the job's fault.
        let updated = sqlx::query(
            "update jobs
             set status = 'pending', attempts = max(attempts - 1, 0), lease_owner = null,
                 lease_expires_at = null, updated_at = ?3
             where id = ?1 and lease_token = ?2 and status = 'running'",
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
                &mut tx,
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
    tx.commit().await?;
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

pub(super) async fn rescue_expired(pool: &SqlitePool, now_ms: i64) -> Result<Vec<RescuedJob>, sqlx::Error> {
    // A read first, so the common case (nothing expired) takes no write lock.
    let any_expired: bool =
        sqlx::query_scalar("select exists (select 1 from jobs where status = 'running' and lease_expires_at < ?1)")
            .bind(now_ms)
            .fetch_one(pool)
            .await?;
    if !any_expired {
        return Ok(Vec::new());
    }
    let mut tx = begin_write(pool).await?;
    let expired: Vec<ExpiredRow> = sqlx::query_as(
        "select id, job_type, attempts, lease_token, lease_owner, claimed_at from jobs
         where status = 'running' and lease_expires_at < ?1
         limit 1000",
    )
    .bind(now_ms)
    .fetch_all(&mut *tx)
    .await?;
    let mut rescued = Vec::with_capacity(expired.len());
    for row in expired {
        let lost_by = row.lease_owner.unwrap_or_default();
        let error = format!("lease held by worker {lost_by} expired");
        // The attempt still counts, so a job that kills its worker every time
        // ends up dead instead of looping.
        sqlx::query(
            "update jobs
             set status = 'pending', lease_owner = null, lease_expires_at = null,
                 last_error = ?3, updated_at = ?4
             where id = ?1 and lease_token = ?2 and status = 'running'",
        )
        .bind(row.id)
        .bind(row.lease_token)
        .bind(&error)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        insert_attempt(
            &mut tx,
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
    tx.commit().await?;
    Ok(rescued)
}
