//! The job console's reads: jobs by console state with their payload,
//! attempts, last error and lease, and one job with its attempt history and
//! the operator actions taken on it. Re-queueing and discarding go through
//! the queue's own audited operations (`JobStore::requeue_dead`, `discard_dead`).

use crate::db::DbConn;
use serde::{Deserialize, Serialize};

use crate::time::format_ms;

/// A job's state as operators see it: the queue's `pending` split into jobs
/// waiting for their first attempt (`pending`) and jobs waiting for a retry
/// (`retrying`: at least one attempt started, then a transient failure or an
/// expired lease sent them back).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleState {
    /// Waiting for its first attempt.
    Pending,
    /// Waiting for a retry after at least one attempt.
    Retrying,
    /// Held by a worker under a lease.
    Running,
    /// Failed for good; needs an operator.
    Dead,
    /// Finished (kept until retention prunes it).
    Succeeded,
    /// Dead and discarded by an operator (kept until retention prunes it).
    Discarded,
}

impl ConsoleState {
    /// The SQL condition selecting jobs in this state; literals only, so that
    /// SQLite uses the state's partial index.
    fn condition(self) -> &'static str {
        match self {
            ConsoleState::Pending => "status = 'pending' and attempts = 0",
            ConsoleState::Retrying => "status = 'pending' and attempts > 0",
            ConsoleState::Running => "status = 'running'",
            ConsoleState::Dead => "status = 'dead'",
            ConsoleState::Succeeded => "status = 'succeeded'",
            ConsoleState::Discarded => "status = 'discarded'",
        }
    }

    fn of(status: &str, attempts: i64) -> &'static str {
        match status {
            "pending" if attempts > 0 => "retrying",
            "pending" => "pending",
            "running" => "running",
            "dead" => "dead",
            "succeeded" => "succeeded",
            _ => "discarded",
        }
    }
}

/// Which jobs to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobListFilter {
    /// Only jobs in this state.
    pub state: Option<ConsoleState>,
    /// Only jobs of this type.
    pub job_type: Option<String>,
    /// Page size.
    pub limit: i64,
    /// Jobs skipped.
    pub offset: i64,
}

/// A job in the console.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConsoleJob {
    /// The job id.
    pub id: i64,
    /// The job type (the handler that runs it).
    pub job_type: String,
    /// `pending`, `retrying`, `running`, `dead`, `succeeded` or `discarded`.
    pub state: String,
    /// The payload as pushed (JSON; a string if it is not valid JSON).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Attempts started so far (a retry by an operator starts again from 0).
    pub attempts: i64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// When the job is (or was) due (RFC 3339).
    pub run_at: String,
    /// The worker holding the lease, while running.
    pub lease_owner: Option<String>,
    /// When that lease expires unless extended (RFC 3339).
    pub lease_expires_at: Option<String>,
    /// When the job was pushed (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
    /// When it succeeded, died or was discarded (RFC 3339).
    pub finished_at: Option<String>,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    job_type: String,
    payload: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    run_at: i64,
    lease_owner: Option<String>,
    lease_expires_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    finished_at: Option<i64>,
}

impl From<JobRow> for ConsoleJob {
    fn from(row: JobRow) -> ConsoleJob {
        let running = row.status == "running";
        ConsoleJob {
            id: row.id,
            state: ConsoleState::of(&row.status, row.attempts).to_owned(),
            payload: serde_json::from_str(&row.payload).unwrap_or(serde_json::Value::String(row.payload)),
            job_type: row.job_type,
            attempts: row.attempts,
            last_error: row.last_error,
            run_at: format_ms(row.run_at),
            lease_owner: row.lease_owner.filter(|_| running),
            lease_expires_at: row.lease_expires_at.filter(|_| running).map(format_ms),
            created_at: format_ms(row.created_at),
            updated_at: format_ms(row.updated_at),
            finished_at: row.finished_at.map(format_ms),
        }
    }
}

const JOB_COLUMNS: &str = "id, job_type, payload, status, attempts, last_error, run_at, lease_owner, \
    lease_expires_at, created_at, updated_at, finished_at";

/// One page of jobs, newest first, and how many match in all.
pub async fn list_jobs(conn: &mut DbConn, filter: &JobListFilter) -> Result<(Vec<ConsoleJob>, i64), sqlx::Error> {
    let condition = filter.state.map_or("true", ConsoleState::condition);
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select count(*) from jobs where {condition} and ($1 is null or job_type = $1)"
    )))
    .bind(&filter.job_type)
    .fetch_one(&mut *conn)
    .await?;
    let rows: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {JOB_COLUMNS} from jobs where {condition} and ($1 is null or job_type = $1)
         order by id desc limit $2 offset $3"
    )))
    .bind(&filter.job_type)
    .bind(filter.limit)
    .bind(filter.offset)
    .fetch_all(&mut *conn)
    .await?;
    Ok((rows.into_iter().map(ConsoleJob::from).collect(), total))
}

/// One recorded attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ConsoleAttempt {
    /// The attempt number.
    pub attempt: i64,
    /// The worker that ran it.
    pub worker_id: String,
    /// When it started (RFC 3339).
    #[serde(with = "crate::time::rfc3339_ms")]
    #[schema(value_type = String)]
    pub started_at: i64,
    /// How long it ran, in milliseconds.
    pub duration_ms: i64,
    /// `succeeded`, `retry`, `dead`, `released` or `abandoned`.
    pub outcome: String,
    /// The failure, if any.
    pub error: Option<String>,
}

/// An operator's action on a job: who, when, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct OperatorAction {
    /// `requeue` or `discard`.
    pub action: String,
    /// Who: `admin:<user id>` for actions taken through the API.
    pub actor: String,
    /// Why, as the operator wrote it.
    pub reason: Option<String>,
    /// When (RFC 3339).
    #[serde(with = "crate::time::rfc3339_ms")]
    #[schema(value_type = String)]
    pub at: i64,
}

/// A job with its history.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobDetail {
    /// The job.
    #[serde(flatten)]
    pub job: ConsoleJob,
    /// Every attempt, oldest first.
    pub attempt_history: Vec<ConsoleAttempt>,
    /// Operators' actions on the job, oldest first.
    pub operator_actions: Vec<OperatorAction>,
}

/// One job with its attempts and operator actions.
pub async fn job_detail(conn: &mut DbConn, job_id: i64) -> Result<Option<JobDetail>, sqlx::Error> {
    let row: Option<JobRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("select {JOB_COLUMNS} from jobs where id = $1")))
            .bind(job_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(row) = row else { return Ok(None) };
    let attempt_history = sqlx::query_as(
        "select attempt, worker_id, started_at, duration_ms, outcome, error from job_attempts
         where job_id = $1 order by id",
    )
    .bind(job_id)
    .fetch_all(&mut *conn)
    .await?;
    let operator_actions = sqlx::query_as(
        "select action, actor, reason, created_at as at from job_operator_actions where job_id = $1 order by id",
    )
    .bind(job_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(JobDetail { job: row.into(), attempt_history, operator_actions }))
}
