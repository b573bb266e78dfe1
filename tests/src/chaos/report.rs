//! The end of a run: numbers gathered from the database, the checks, the
//! evidence for any violation (the offending orders' timelines), and the
//! summary table printed from all of it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use kassa_common::db::Pool;
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use super::ChaosConfig;
use super::api::{Api, Call};
use super::checks::{Check, Verdict};

/// Jobs of one type.
#[derive(Clone, Debug, Default, Serialize)]
pub struct JobStats {
    /// The job type.
    pub job_type: String,
    /// Jobs that succeeded.
    pub succeeded: i64,
    /// Jobs that are dead.
    pub dead: i64,
    /// Jobs in any other state.
    pub other: i64,
    /// Attempts recorded.
    pub attempts: i64,
    /// Attempts that ended in a scheduled retry.
    pub retries: i64,
    /// Of those, retries not counted against the job's attempts: the
    /// database could not be reached (a cut).
    pub uncounted: i64,
    /// Attempts whose lease expired (worker killed, or too slow).
    pub abandoned: i64,
}

/// What the database says happened.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// Orders per status.
    pub orders_by_status: Vec<(String, i64)>,
    /// Cancelled orders per reason.
    pub cancel_reasons: Vec<(String, i64)>,
    /// Jobs per type.
    pub jobs: Vec<JobStats>,
    /// Notification rows.
    pub notifications: i64,
}

/// Reads the run's numbers from the database.
pub async fn gather(pool: &Pool) -> anyhow::Result<Stats> {
    let orders_by_status =
        sqlx::query_as("select status, count(*) from orders group by status order by status").fetch_all(pool).await?;
    let cancel_reasons = sqlx::query_as(
        "select coalesce(cancel_reason, '?'), count(*) from orders where status = 'cancelled'
         group by 1 order by 2 desc",
    )
    .fetch_all(pool)
    .await?;
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "select job_type, sum(case when status = 'succeeded' then 1 else 0 end),
                sum(case when status = 'dead' then 1 else 0 end),
                sum(case when status not in ('succeeded', 'dead') then 1 else 0 end)
         from jobs group by job_type order by job_type",
    )
    .fetch_all(pool)
    .await?;
    let attempts: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "select j.job_type, count(*), sum(case when a.outcome = 'retry' then 1 else 0 end),
                sum(case when a.outcome = 'retry' and a.error like '%' || $1 then 1 else 0 end),
                sum(case when a.outcome = 'abandoned' then 1 else 0 end)
         from job_attempts a join jobs j on j.id = a.job_id group by j.job_type",
    )
    .bind(kassa_common::queue::store::NOT_COUNTED)
    .fetch_all(pool)
    .await?;
    let jobs = rows
        .into_iter()
        .map(|(job_type, succeeded, dead, other)| {
            let (attempts, retries, uncounted, abandoned) = attempts
                .iter()
                .find(|(t, ..)| *t == job_type)
                .map_or((0, 0, 0, 0), |&(_, attempts, retries, uncounted, abandoned)| {
                    (attempts, retries, uncounted, abandoned)
                });
            JobStats { job_type, succeeded, dead, other, attempts, retries, uncounted, abandoned }
        })
        .collect();
    let notifications = sqlx::query_scalar("select count(*) from notifications").fetch_one(pool).await?;
    Ok(Stats { orders_by_status, cancel_reasons, jobs, notifications })
}

/// What the clients and the monkey did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Activity {
    /// Orders acknowledged with 202.
    pub accepted: u64,
    /// Orders refused (409, or a cart left empty).
    pub refused: u64,
    /// Requests cut off by an API kill, outcome unknown to the client.
    pub unknown: u64,
    /// Order attempts without a key answered 503 (database cut), outcome unknown.
    pub unavailable: u64,
    /// Accepted through the cart.
    pub via_cart: u64,
    /// Accepted with an `Idempotency-Key`.
    pub keyed: u64,
    /// Idempotent replays checked.
    pub replays: u64,
    /// Cancels acknowledged.
    pub cancels: u64,
    /// Ships acknowledged.
    pub ships: u64,
    /// Deliveries acknowledged.
    pub deliveries: u64,
    /// Workers SIGKILLed and replaced.
    pub worker_kills: u64,
    /// API SIGKILLs and restarts.
    pub api_restarts: u64,
    /// Starts that failed for want of the database (cut during startup)
    /// and were tried again, as a supervisor would.
    pub start_retries: u64,
    /// Times every database session was terminated.
    pub db_cuts: u64,
    /// Sessions terminated by those cuts.
    pub sessions_cut: u64,
    /// 503 answers (all requests, retried ones included).
    pub answers_503: u64,
    /// 500 answers.
    pub answers_500: u64,
}

/// How long each phase took.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Timings {
    /// Starting the processes and creating accounts and products.
    #[serde(serialize_with = "crate::results::serialize_seconds")]
    pub setup: Duration,
    /// Placing orders and carrying out the follow-ups, under fire.
    #[serde(serialize_with = "crate::results::serialize_seconds")]
    pub workload: Duration,
    /// From the end of the workload until no order was pending (still under fire).
    #[serde(serialize_with = "crate::results::serialize_seconds")]
    pub drain: Duration,
    /// From the monkey stopping until the queue was empty.
    #[serde(serialize_with = "crate::results::serialize_seconds")]
    pub settle: Duration,
    /// The whole run.
    #[serde(serialize_with = "crate::results::serialize_seconds")]
    pub total: Duration,
}

/// The outcome of a chaos run.
#[derive(Clone, Debug, Serialize)]
pub struct ChaosReport {
    /// The settings it ran with.
    pub config: ChaosConfig,
    /// The database it ran on.
    pub database: String,
    /// The PostgreSQL database's name (created for the run).
    pub database_name: Option<String>,
    /// Where each process ran at the start.
    pub placements: Vec<String>,
    /// Every invariant.
    pub checks: Vec<Check>,
    /// Numbers from the database.
    pub stats: Stats,
    /// Numbers from the clients and the monkey.
    pub activity: Activity,
    /// Phase durations.
    pub timings: Timings,
    /// The offending orders, with their timelines.
    pub evidence: Vec<String>,
    /// The data directory, kept when a check failed.
    pub kept_data_dir: Option<PathBuf>,
    /// The PostgreSQL database's URL, when it was kept (asked for, or a check failed).
    pub kept_database: Option<String>,
}

impl ChaosReport {
    /// The checks that failed.
    pub fn violations(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| c.verdict == Verdict::Fail).collect()
    }

    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations().is_empty()
    }

    /// The whole report as one JSON document, with `passed` on top, for CI.
    pub fn to_json(&self) -> Value {
        let mut document = serde_json::json!({ "passed": self.passed() });
        if let (Value::Object(top), Ok(Value::Object(report))) = (&mut document, serde_json::to_value(self)) {
            top.extend(report);
        }
        document
    }
}

/// One order as evidence: status, payment, history and timeline.
pub async fn order_evidence(api: &Api, admin: &str, order_id: i64) -> String {
    let path = format!("/orders/{order_id}");
    let order = match api.send(Call::new(&Method::GET, &path, Some(admin))).await {
        Ok(answer) if answer.status == 200 => answer.body,
        Ok(answer) => return format!("order {order_id}: GET answered {} {}", answer.status, answer.body),
        Err(error) => return format!("order {order_id}: GET failed: {error}"),
    };
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let mut lines = vec![format!(
        "order {order_id}: {} (cancel reason {}), card {}, payment {}",
        text(&order["status"]),
        text(&order["cancel_reason"]),
        text(&order["payment_method"]),
        if order["payment"].is_null() { "none".to_owned() } else { text(&order["payment"]["status"]) }
    )];
    for entry in order["timeline"].as_array().into_iter().flatten() {
        lines.push(format!("    {}  {:<12} {}", text(&entry["at"]), text(&entry["kind"]), text(&entry["summary"])));
    }
    lines.join("\n")
}

fn rate(count: u64, took: Duration) -> f64 {
    let secs = took.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

impl fmt::Display for ChaosReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, a, t) = (&self.config, &self.activity, &self.timings);
        writeln!(f, "\n=== chaos summary (seed {}) ===", c.seed)?;
        writeln!(
            f,
            "run          {} order attempts, {} users, {} APIs, {} workers, a kill every ~{:?}{}{}, mail: {}",
            c.orders,
            c.users,
            c.apis,
            c.workers,
            c.kill_every,
            if c.kill_api { " (APIs too)" } else { "" },
            c.cut_db_every.map_or_else(String::new, |every| format!(", a database cut every ~{every:?}")),
            if c.smtp { "SMTP sink" } else { "file outbox" }
        )?;
        writeln!(f, "database     {}", self.database)?;
        writeln!(f, "hosts        {}", c.hosts.as_str())?;
        for placement in &self.placements {
            writeln!(f, "  {placement}")?;
        }
        writeln!(
            f,
            "time         setup {:.1}s, workload {:.1}s, drain under fire {:.1}s, settle {:.1}s, total {:.1}s",
            t.setup.as_secs_f64(),
            t.workload.as_secs_f64(),
            t.drain.as_secs_f64(),
            t.settle.as_secs_f64(),
            t.total.as_secs_f64()
        )?;
        let end_to_end = t.workload + t.drain + t.settle;
        writeln!(
            f,
            "throughput   {:.0} orders/s acknowledged during the workload, {:.0} orders/s end to end (to quiescence)",
            rate(a.accepted, t.workload),
            rate(a.accepted, end_to_end)
        )?;
        writeln!(
            f,
            "clients      {} accepted ({} via cart, {} with Idempotency-Key, {} replays checked), {} refused, {} cut off, \
             {} answered 503",
            a.accepted, a.via_cart, a.keyed, a.replays, a.refused, a.unknown, a.unavailable
        )?;
        writeln!(f, "moves        {} cancels, {} ships, {} deliveries acknowledged", a.cancels, a.ships, a.deliveries)?;
        writeln!(
            f,
            "chaos        {} workers SIGKILLed and replaced, {} API kills and restarts, {} database cuts \
             ({} sessions terminated); {} answers were 503, {} were 500",
            a.worker_kills, a.api_restarts, a.db_cuts, a.sessions_cut, a.answers_503, a.answers_500
        )?;
        if a.start_retries > 0 {
            writeln!(
                f,
                "             {} process starts exited for want of the database (cut while starting) and were \
                 started again, as a supervisor would",
                a.start_retries
            )?;
        }
        writeln!(f, "\norders by status")?;
        for (status, count) in &self.stats.orders_by_status {
            writeln!(f, "  {status:<12} {count:>7}")?;
        }
        if !self.stats.cancel_reasons.is_empty() {
            let reasons: Vec<String> = self.stats.cancel_reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
            writeln!(f, "  cancelled by reason: {}", reasons.join(", "))?;
        }
        writeln!(f, "  notifications recorded: {}", self.stats.notifications)?;
        writeln!(
            f,
            "\n{:<18} {:>9} {:>5} {:>6} {:>9} {:>8} {:>9} {:>10}",
            "jobs by type", "succeeded", "dead", "other", "attempts", "retries", "uncounted", "abandoned"
        )?;
        let total = self.stats.jobs.iter().fold(
            JobStats { job_type: "total".to_owned(), ..JobStats::default() },
            |sum, job| JobStats {
                succeeded: sum.succeeded + job.succeeded,
                dead: sum.dead + job.dead,
                other: sum.other + job.other,
                attempts: sum.attempts + job.attempts,
                retries: sum.retries + job.retries,
                uncounted: sum.uncounted + job.uncounted,
                abandoned: sum.abandoned + job.abandoned,
                ..sum
            },
        );
        for job in self.stats.jobs.iter().chain(std::iter::once(&total)) {
            writeln!(
                f,
                "  {:<16} {:>9} {:>5} {:>6} {:>9} {:>8} {:>9} {:>10}",
                job.job_type,
                job.succeeded,
                job.dead,
                job.other,
                job.attempts,
                job.retries,
                job.uncounted,
                job.abandoned
            )?;
        }
        writeln!(f, "\ninvariants")?;
        for check in &self.checks {
            let verdict = match check.verdict {
                Verdict::Pass => "PASS",
                Verdict::Fail => "FAIL",
                Verdict::Skip => "SKIP",
            };
            writeln!(f, "  {verdict}  {}\n          {}", check.name, check.detail)?;
        }
        if !self.evidence.is_empty() {
            writeln!(f, "\nevidence (GET /orders/{{id}} timelines)")?;
            for order in &self.evidence {
                writeln!(f, "{order}")?;
            }
        }
        if let Some(dir) = &self.kept_data_dir {
            writeln!(f, "\ndata directory kept for inspection: {}", dir.display())?;
        }
        if let Some(url) = &self.kept_database {
            writeln!(f, "database kept: {url}")?;
        }
        let violations = self.violations().len();
        if violations == 0 {
            writeln!(f, "\nresult: PASS — every invariant held")
        } else {
            writeln!(f, "\nresult: FAIL — {violations} invariant(s) violated")
        }
    }
}
