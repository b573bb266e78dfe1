//! What operators see and do: listing jobs and attempts, re-queueing and
//! discarding dead jobs (audited), queue statistics, and retention pruning.

use crate::db::Pool;

use crate::db::{Db, DbConn, now_ms};
use crate::queue::job::{JobId, JobState};
use crate::queue::store::{AttemptOutcome, AttemptRecord, JobFilter, JobSummary, QueueDepth, QueueError, QueueStats};

pub(super) async fn prune_finished(tx: &mut DbConn, finished_before_ms: i64, batch: u32) -> Result<u64, sqlx::Error> {
    // Small batches keep each write transaction short, so claims and acks
    // never wait long behind retention. Attempts go with their job (cascade).
    let deleted = sqlx::query(
        "delete from jobs where id in (
             select id from jobs
             where status in ('succeeded', 'discarded') and finished_at < $1
             limit $2)",
    )
    .bind(finished_before_ms)
    .bind(i64::from(batch))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(deleted)
}

/// What an operator does to a dead job.
#[derive(Clone, Copy, Debug)]
pub(super) enum OperatorAction {
    Requeue,
    Discard,
}

pub(super) async fn operator_action(
    db: &Db,
    job_id: JobId,
    action: OperatorAction,
    actor: &str,
    reason: Option<&str>,
) -> Result<(), QueueError> {
    let (actor, reason) = (actor.to_owned(), reason.map(str::to_owned));
    db.write(move |tx| {
        let (actor, reason) = (actor.clone(), reason.clone());
        Box::pin(async move { record_operator_action(tx, job_id, action, &actor, reason.as_deref()).await })
    })
    .await
}

async fn record_operator_action(
    tx: &mut DbConn,
    job_id: JobId,
    action: OperatorAction,
    actor: &str,
    reason: Option<&str>,
) -> Result<(), QueueError> {
    let now = now_ms();
    let status: Option<String> =
        sqlx::query_scalar("select status from jobs where id = $1").bind(job_id.0).fetch_optional(&mut *tx).await?;
    let Some(status) = status else {
        return Err(QueueError::NotFound(job_id));
    };
    if status != "dead" {
        let state = JobState::parse(&status).unwrap_or(JobState::Running);
        return Err(QueueError::NotDead { job_id, state });
    }
    let (update, action_name) = match action {
        OperatorAction::Requeue => (
            "update jobs set status = 'pending', attempts = 0, run_at = $2,
                     finished_at = null, updated_at = $2
                 where id = $1 and status = 'dead'",
            "requeue",
        ),
        OperatorAction::Discard => (
            "update jobs set status = 'discarded', finished_at = $2, updated_at = $2
                 where id = $1 and status = 'dead'",
            "discard",
        ),
    };
    sqlx::query(update).bind(job_id.0).bind(now).execute(&mut *tx).await?;
    sqlx::query(
        "insert into job_operator_actions (job_id, action, actor, reason, created_at)
             values ($1, $2, $3, $4, $5)",
    )
    .bind(job_id.0)
    .bind(action_name)
    .bind(actor)
    .bind(reason)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    job_type: String,
    payload: String,
    status: String,
    dedup_key: Option<String>,
    attempts: i64,
    run_at: i64,
    lease_owner: Option<String>,
    lease_expires_at: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
}

impl From<JobRow> for JobSummary {
    fn from(row: JobRow) -> JobSummary {
        JobSummary {
            id: JobId(row.id),
            job_type: row.job_type,
            payload: row.payload,
            state: JobState::parse(&row.status).unwrap_or(JobState::Pending),
            dedup_key: row.dedup_key,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            run_at_ms: row.run_at,
            lease_owner: row.lease_owner,
            lease_expires_at_ms: row.lease_expires_at,
            last_error: row.last_error,
            created_at_ms: row.created_at,
            updated_at_ms: row.updated_at,
            finished_at_ms: row.finished_at,
        }
    }
}

const JOB_COLUMNS: &str = "id, job_type, payload, status, dedup_key, attempts, run_at, \
    lease_owner, lease_expires_at, last_error, created_at, updated_at, finished_at";

pub(super) async fn list_jobs(pool: &Pool, filter: &JobFilter) -> Result<Vec<JobSummary>, sqlx::Error> {
    // The state is spelled out as a literal (it comes from the enum, never
    // from input) so that SQLite can use the partial index for that state.
    let state_clause = match filter.state {
        Some(state) => format!("status = '{}'", state.as_str()),
        None => "true".to_owned(),
    };
    let sql = format!(
        "select {JOB_COLUMNS} from jobs
         where {state_clause} and ($1 is null or job_type = $1) and ($2 is null or id < $2)
         order by id desc limit $3"
    );
    let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(&filter.job_type)
        .bind(filter.before_id.map(|id| id.0))
        .bind(i64::from(filter.limit.clamp(1, 500)))
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(JobSummary::from).collect())
}

pub(super) async fn get_job(pool: &Pool, job_id: JobId) -> Result<Option<JobSummary>, sqlx::Error> {
    let sql = format!("select {JOB_COLUMNS} from jobs where id = $1");
    let row: Option<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(job_id.0).fetch_optional(pool).await?;
    Ok(row.map(JobSummary::from))
}

#[derive(sqlx::FromRow)]
struct AttemptDbRow {
    job_id: i64,
    attempt: i64,
    worker_id: String,
    started_at: i64,
    finished_at: i64,
    duration_ms: i64,
    outcome: String,
    error: Option<String>,
}

pub(super) async fn attempts(pool: &Pool, job_id: JobId) -> Result<Vec<AttemptRecord>, sqlx::Error> {
    let rows: Vec<AttemptDbRow> = sqlx::query_as(
        "select job_id, attempt, worker_id, started_at, finished_at, duration_ms, outcome, error
         from job_attempts where job_id = $1 order by id",
    )
    .bind(job_id.0)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| AttemptRecord {
            job_id: JobId(row.job_id),
            attempt: u32::try_from(row.attempt).unwrap_or(u32::MAX),
            worker_id: row.worker_id,
            started_at_ms: row.started_at,
            finished_at_ms: row.finished_at,
            duration_ms: row.duration_ms,
            outcome: AttemptOutcome::parse(&row.outcome).unwrap_or(AttemptOutcome::Abandoned),
            error: row.error,
        })
        .collect())
}

pub(super) async fn stats(pool: &Pool) -> Result<QueueStats, sqlx::Error> {
    // One query per state, each with the state as a literal so it reads
    // only that state's partial index, however many finished rows exist.
    let mut depth = Vec::new();
    for (state, sql) in [
        (JobState::Pending, "select job_type, count(*) from jobs where status = 'pending' group by job_type"),
        (JobState::Running, "select job_type, count(*) from jobs where status = 'running' group by job_type"),
        (JobState::Dead, "select job_type, count(*) from jobs where status = 'dead' group by job_type"),
    ] {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql).fetch_all(pool).await?;
        depth.extend(rows.into_iter().map(|(job_type, count)| QueueDepth {
            job_type,
            state,
            count: u64::try_from(count).unwrap_or(0),
        }));
    }
    let now = now_ms();
    let oldest_due: Option<i64> =
        sqlx::query_scalar("select min(run_at) from jobs where status = 'pending' and run_at <= $1")
            .bind(now)
            .fetch_one(pool)
            .await?;
    Ok(QueueStats { depth, oldest_pending_age_ms: oldest_due.map_or(0, |run_at| now.saturating_sub(run_at)) })
}
