//! Pushing jobs inside the caller's unit of work, on either backend: the
//! jobs exist if and only if the caller commits. With a dedup key, a second
//! push of the same job type and key writes nothing and returns the
//! existing job.
//!
//! Idle workers in this process are woken at once; on PostgreSQL a
//! `NOTIFY` in the same transaction wakes the workers of every other
//! process and host when the transaction commits.

use crate::db::{Backend, DbConn, now_ms};

use super::job::{Enqueued, JobId, NewJob};
use super::store::QueueError;
use super::wake;

/// The channel PostgreSQL workers listen on for new jobs.
pub const NOTIFY_CHANNEL: &str = "kassa_jobs";

/// Pushes one job in the caller's transaction; see [`enqueue_many`].
pub async fn enqueue(conn: &mut DbConn, job: &NewJob) -> Result<Enqueued, QueueError> {
    let mut pushed = enqueue_many(conn, std::slice::from_ref(job)).await?;
    pushed.pop().ok_or_else(|| QueueError::Database(sqlx::Error::Protocol("the push returned no job".into())))
}

/// Most jobs one insert statement carries: five parameters each stay far
/// below SQLite's limit of 32,766 parameters per statement.
const JOBS_PER_INSERT: usize = 1000;

/// Pushes jobs in the caller's transaction with one insert per thousand
/// jobs; returns, per job in order, whether it was created or already existed.
pub async fn enqueue_many(conn: &mut DbConn, jobs: &[NewJob]) -> Result<Vec<Enqueued>, QueueError> {
    let mut pushed = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(JOBS_PER_INSERT) {
        pushed.extend(insert_jobs(conn, chunk).await?);
    }
    if pushed.iter().any(|p| matches!(p, Enqueued::Created(_))) {
        if Backend::of(conn) == Backend::Postgres {
            sqlx::query("select pg_notify($1, '')").bind(NOTIFY_CHANNEL).execute(&mut *conn).await?;
        }
        wake::notify_pushed();
    }
    Ok(pushed)
}

async fn insert_jobs(conn: &mut DbConn, jobs: &[NewJob]) -> Result<Vec<Enqueued>, QueueError> {
    let now = now_ms();
    // Five parameters per job, then the shared timestamp.
    let now_param = jobs.len() * 5 + 1;
    let rows: Vec<String> = (0..jobs.len())
        .map(|index| {
            let p = index * 5;
            format!("(${}, ${}, ${}, ${}, ${}, ${now_param}, ${now_param})", p + 1, p + 2, p + 3, p + 4, p + 5)
        })
        .collect();
    let sql = format!(
        "insert into jobs (job_type, payload, dedup_key, order_id, run_at, created_at, updated_at) values {}
         on conflict (job_type, dedup_key) where dedup_key is not null do nothing
         returning id, job_type, dedup_key",
        rows.join(", ")
    );
    let mut insert = sqlx::query_as::<_, (i64, String, Option<String>)>(sqlx::AssertSqlSafe(sql));
    for job in jobs {
        insert = insert
            .bind(job.job_type.as_str())
            .bind(job.payload.as_str())
            .bind(job.dedup_key.as_deref())
            .bind(job.order_id)
            .bind(job.run_at_ms.unwrap_or(now));
    }
    let mut created: Vec<Option<(i64, String, Option<String>)>> =
        insert.bind(now).fetch_all(&mut *conn).await?.into_iter().map(Some).collect();
    // RETURNING promises no order; ids grow in insertion order, so match
    // each job to the first unclaimed row of its type and key.
    created.sort_by_key(|row| row.as_ref().map(|(id, _, _)| *id));
    let mut pushed = Vec::with_capacity(jobs.len());
    for job in jobs {
        let row = created.iter_mut().find(|row| {
            row.as_ref()
                .is_some_and(|(_, job_type, dedup_key)| *job_type == job.job_type && *dedup_key == job.dedup_key)
        });
        if let Some((id, _, _)) = row.and_then(Option::take) {
            ::metrics::counter!(super::metrics::JOBS_ENQUEUED, "job_type" => job.job_type.clone()).increment(1);
            pushed.push(Enqueued::Created(JobId(id)));
            continue;
        }
        let existing: i64 = sqlx::query_scalar("select id from jobs where job_type = $1 and dedup_key = $2")
            .bind(job.job_type.as_str())
            .bind(job.dedup_key.as_deref())
            .fetch_one(&mut *conn)
            .await?;
        pushed.push(Enqueued::Duplicate(JobId(existing)));
    }
    Ok(pushed)
}
