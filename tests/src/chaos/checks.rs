//! The invariants, checked once the system is quiescent, each one a
//! [`Check`] that passes, fails (a violation) or is skipped.
//! Those about a database that goes away (5xx answers, orders around a
//! cut, processes that gave up) and PostgreSQL's integrity check live in
//! `outage`.
//!
//! "No job ran concurrently twice" is judged from `job_attempts`. Every
//! claim takes a fresh fencing token, so no token may appear twice for a
//! job. An attempt row is written either by the lease holder's ack
//! (`succeeded`, `retry`, `dead`, `released`: handler start → handler end,
//! committed only while the token still matches) or by the rescue of an
//! expired lease (`abandoned`: the claim's timestamp → the rescue's). A job
//! is claimable again only after one of those writes commits, so the
//! holder-committed attempts of a job, ordered by token, must not overlap
//! (equal milliseconds allowed): an overlap would mean two holders both had
//! their results accepted.
//!
//! `abandoned` attempts are left out of that comparison, for two reasons.
//! Their worker may have been alive (slow, not killed) and still running
//! after the rescue: that overlap is by design — its ack is refused by the
//! fencing token and its side effects are absorbed by idempotency — so such
//! leases lost by live workers are counted and reported, not failed. And
//! their interval is approximate: the store takes both the claim's and the
//! rescue's timestamp before waiting for SQLite's write lock, so an
//! abandoned interval can appear to start before the previous attempt ended.
//! The largest such apparent overlap is reported as the claim lock wait.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use kassa_common::db::Pool;
use reqwest::Method;

use kassa_common::db::Backend;

use super::api::{Api, Call, ServerError};
use super::database::Cut;

mod outage;

use super::workload::{DECLINED, Tally};
use crate::invariants;
pub use outage::CUT_WINDOW;

/// The statuses an order may end a run in.
const STABLE: [&str; 4] = ["confirmed", "shipped", "delivered", "cancelled"];
/// Offending ids listed in a detail line.
const LISTED: usize = 10;

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The invariant holds.
    Pass,
    /// The invariant is violated.
    Fail,
    /// Could not be checked (e.g. an endpoint that does not exist yet).
    Skip,
}

/// One checked invariant.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Check {
    /// What is checked.
    pub name: &'static str,
    /// The outcome.
    pub verdict: Verdict,
    /// Numbers, and what broke.
    pub detail: String,
    /// Orders that break it, for the evidence section.
    pub orders: Vec<i64>,
}

impl Check {
    fn judge(name: &'static str, ok: bool, detail: String) -> Check {
        Check { name, verdict: if ok { Verdict::Pass } else { Verdict::Fail }, detail, orders: Vec::new() }
    }

    fn with_orders(mut self, orders: Vec<i64>) -> Check {
        self.orders = orders;
        self
    }
}

/// What the checks look at.
pub struct Inputs<'a> {
    /// The database, opened directly.
    pub pool: &'a Pool,
    /// The API.
    pub api: &'a Api,
    /// An admin token.
    pub admin: &'a str,
    /// What the clients saw.
    pub tally: &'a Tally,
    /// Ids of the workers the monkey killed.
    pub killed_workers: &'a [String],
    /// Where the e-mails are (outbox or SMTP sink).
    pub mail_dir: &'a Path,
    /// How long the system took to become quiescent, or why it did not.
    pub settled: Result<Duration, String>,
    /// The database's backend.
    pub backend: Backend,
    /// The database cuts, when `--cut-db-every` was given (`None` otherwise).
    pub cuts: Option<&'a [Cut]>,
    /// Every 5xx answer the clients got.
    pub server_errors: &'a [ServerError],
    /// Processes that exited without being killed.
    pub exited: &'a [String],
}

fn listed(ids: &[i64]) -> String {
    let shown: Vec<String> = ids.iter().take(LISTED).map(i64::to_string).collect();
    let more = if ids.len() > LISTED { format!(" (+{} more)", ids.len() - LISTED) } else { String::new() };
    format!("{}{more}", shown.join(", "))
}

/// Runs every check.
pub async fn run_all(inputs: &Inputs<'_>) -> anyhow::Result<Vec<Check>> {
    Ok(vec![
        settled(inputs).await?,
        acknowledged_orders_stable(inputs).await?,
        acknowledged_moves_took_effect(inputs).await?,
        declined_cards_never_confirmed(inputs).await?,
        charges_match(inputs).await?,
        shared_invariants(inputs).await,
        stock_audit_endpoint(inputs).await,
        no_job_ran_twice_at_once(inputs).await?,
        each_move_once(inputs).await?,
        notification_once(inputs).await?,
        mail_once(inputs).await?,
        integrity(inputs).await?,
        no_lease_left(inputs).await?,
        no_dead_jobs(inputs).await?,
        idempotent_replays(inputs),
        documented_answers(inputs),
        outage::no_server_error(inputs),
        outage::cuts_lost_nothing(inputs).await?,
        outage::no_process_gave_up(inputs),
    ])
}

async fn settled(inputs: &Inputs<'_>) -> anyhow::Result<Check> {
    let name = "quiescent: no pending order, no pending/running job";
    match &inputs.settled {
        Ok(took) => Ok(Check::judge(name, true, format!("after the workload, settled in {:.1}s", took.as_secs_f64()))),
        Err(why) => {
            let pending: Vec<i64> = sqlx::query_scalar("select id from orders where status = 'pending' order by id")
                .fetch_all(inputs.pool)
                .await?;
            let jobs: Vec<(String, String, i64)> = sqlx::query_as(
                "select job_type, status, count(*) from jobs where status in ('pending', 'running')
                 group by job_type, status order by job_type, status",
            )
            .fetch_all(inputs.pool)
            .await?;
            let jobs: Vec<String> = jobs.iter().map(|(t, s, n)| format!("{n} {t} {s}")).collect();
            let detail = format!("{why}; pending orders: [{}]; jobs: {}", listed(&pending), jobs.join(", "));
            Ok(Check::judge(name, false, detail).with_orders(pending))
        }
    }
}

async fn final_statuses(pool: &Pool) -> anyhow::Result<HashMap<i64, String>> {
    let rows: Vec<(i64, String)> = sqlx::query_as("select id, status from orders").fetch_all(pool).await?;
    Ok(rows.into_iter().collect())
}

async fn acknowledged_orders_stable(inputs: &Inputs<'_>) -> anyhow::Result<Check> {
    let statuses = final_statuses(inputs.pool).await?;
    let acknowledged = inputs.tally.orders();
    let acknowledged_ids: HashSet<i64> = acknowledged.iter().map(|o| o.order_id).collect();
    let mut missing = Vec::new();
    let mut unstable = Vec::new();
    for order in &acknowledged {
        match statuses.get(&order.order_id) {
            None => missing.push(order.order_id),
            Some(status) if !STABLE.contains(&status.as_str()) => unstable.push(order.order_id),
            Some(_) => {}
        }
    }
    let others: Vec<i64> = statuses.keys().copied().filter(|id| !acknowledged_ids.contains(id)).collect();
    let others_unstable: Vec<i64> =
        others.iter().copied().filter(|id| statuses.get(id).is_some_and(|s| !STABLE.contains(&s.as_str()))).collect();
    let mut detail = format!(
        "{} acknowledged, {} stable; {} more orders from cut-off requests, {} stable",
        acknowledged.len(),
        acknowledged.len() - missing.len() - unstable.len(),
        others.len(),
        others.len() - others_unstable.len()
    );
    if !missing.is_empty() {
        let _ = write!(detail, "; LOST (acknowledged, not in the database): [{}]", listed(&missing));
    }
    if !unstable.is_empty() || !others_unstable.is_empty() {
        let _ = write!(detail, "; not stable: [{}]", listed(&[unstable.clone(), others_unstable.clone()].concat()));
    }
    let ok = missing.is_empty() && unstable.is_empty() && others_unstable.is_empty();
    Ok(Check::judge("every acknowledged order is terminal or stable", ok, detail)
        .with_orders([missing, unstable, others_unstable].concat()))
}

async fn acknowledged_moves_took_effect(inputs: &Inputs<'_>) -> anyhow::Result<Check> {
    let statuses = final_statuses(inputs.pool).await?;
    let obligations = inputs.tally.obligations();
    let mut broken = Vec::new();
    let mut examples = Vec::new();
    for obligation in &obligations {
        let status = statuses.get(&obligation.order_id).map_or("missing", String::as_str);
        if !obligation.expected.allows(status) {
            broken.push(obligation.order_id);
            if examples.len() < 5 {
                examples.push(format!(
                    "order {} is {status} after {} (expected {})",
                    obligation.order_id,
                    obligation.because,
                    obligation.expected.describe()
                ));
            }
        }
    }
    let mut detail = format!(
        "{} acknowledged cancels/ships/deliveries, {} took effect",
        obligations.len(),
        obligations.len() - broken.len()
    );
    if !examples.is_empty() {
        let _ = write!(detail, "; {}", examples.join("; "));
    }
    Ok(Check::judge("acknowledged moves took effect (cancel, ship, deliver)", broken.is_empty(), detail)
        .with_orders(broken))
}

async fn declined_cards_never_confirmed(inputs: &Inputs<'_>) -> anyhow::Result<Check> {
    let statuses = final_statuses(inputs.pool).await?;
    let declined: Vec<i64> =
        inputs.tally.orders().iter().filter(|o| o.payment_method == DECLINED).map(|o| o.order_id).collect();
    let confirmed: Vec<i64> =
        declined.iter().copied().filter(|id| statuses.get(id).is_some_and(|s| s != "cancelled")).collect();
    let detail = if confirmed.is_empty() {
        format!("{} orders with a declined card, all cancelled", declined.len())
    } else {
        format!("{} orders with a declined card; not cancelled: [{}]", declined.len(), listed(&confirmed))
    };
    Ok(Check::judge("declined cards never confirm an order", confirmed.is_empty(), detail).with_orders(confirmed))
}

async fn scalar(pool: &Pool, sql: &'static str) -> anyhow::Result<i64> {
    sqlx::query_scalar(sql).fetch_one(pool).await.with_context(|| format!("Failed to run {sql}"))
}

async fn charges_match(inputs: &Inputs<'_>) -> anyhow::Result<Check> {
    let pool = inputs.pool;
    let charges =
        scalar(pool, "select count(*) from sandbox_ledger where kind = 'charge' and outcome = 'succeeded'").await?;
    let later =
        scalar(pool, "select count(*) from orders where status in ('confirmed', 'shipped', 'delivered')").await?;
    let refunded = scalar(pool, "select count(*) from payments where status = 'refunded'").await?;
    let refunds =
        scalar(pool, "select count(*) from sandbox_ledger where kind = 'refund' and outcome = 'succeeded'").await?;
    let twice: Vec<i64> = sqlx::query_scalar(
        "select order_id from sandbox_ledger where kind = 'charge' and outcome = 'succeeded'
         group by order_id having count(*) > 1",
    )
    .fetch_all(pool)
    .await?;
    let ok = charges == later + refunded && refunds == refunded && twice.is_empty();
    let mut detail = format!(
        "{charges} successful charges = {later} confirmed-or-later + {refunded} refunded ({refunds} refunds in the ledger)"
    );
    if !twice.is_empty() {
        let _ = write!(detail, "; charged twice: [{}]", listed(&twice));
    }
    Ok(Check::judge("charges == confirmed-or-later orders + refunded payments, one per order", ok, detail)
        .with_orders(twice))
}

async fn shared_invariants(inputs: &Inputs<'_>) -> Check {
    let violations = invariants::check(inputs.pool).await;
    let detail = if violations.is_empty() {
        "stock conserved per product, no double charge, no unpaid confirmed order, no cancelled order holding stock"
            .to_owned()
    } else {
        violations.join("; ")
    };
    Check::judge("stock audit clean (kassa_tests::invariants::check)", violations.is_empty(), detail)
}

async fn stock_audit_endpoint(inputs: &Inputs<'_>) -> Check {
    let name = "stock audit clean (GET /admin/stock-audit)";
    let deadline = Instant::now() + Duration::from_secs(30);
    match inputs
        .api
        .send_until_answered(Call::new(&Method::GET, "/admin/stock-audit", Some(inputs.admin)), deadline)
        .await
    {
        Ok(answer) if answer.status == 200 => {
            let ok = answer.body["ok"] == true && answer.body["violations"].as_array().is_some_and(Vec::is_empty);
            let detail = if ok {
                format!("{} products checked, no violation", answer.body["products_checked"])
            } else {
                format!("violations: {}", answer.body["violations"])
            };
            Check::judge(name, ok, detail)
        }
        Ok(answer) if answer.status == 404 => Check {
            name,
            verdict: Verdict::Skip,
            detail: "the endpoint does not exist in this build".to_owned(),
            orders: Vec::new(),
        },
        Ok(answer) => Check::judge(name, false, format!("answered {}: {}", answer.status, answer.body)),
        Err(error) => Check::judge(name, false, format!("no answer: {error:#}")),
    }
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    job_id: i64,
    job_type: String,
    lease_token: i64,
    worker_id: String,
    started_at: i64,
    finished_at: i64,
    outcome: String,
}

async fn no_job_ran_twice_at_once(inputs: &Inputs<'_>) -> anyhow::Result<Check> {
    let rows: Vec<AttemptRow> = sqlx::query_as(
        "select a.job_id, j.job_type, a.lease_token, a.worker_id, a.started_at, a.finished_at, a.outcome
         from job_attempts a join jobs j on j.id = a.job_id
         order by a.job_id, a.lease_token, a.id",
    )
    .fetch_all(inputs.pool)
    .await?;
    let killed: HashSet<&str> = inputs.killed_workers.iter().map(String::as_str).collect();
    let mut problems = Vec::new();
    let mut problem_jobs = Vec::new();
    let mut jobs = 0;
    let (mut abandoned_by_killed, mut abandoned_by_live) = (0, 0);
    let mut claim_lock_wait_ms = 0;
    let mut previous: Option<&AttemptRow> = None;
    let mut last_committed: Option<&AttemptRow> = None;
    for row in &rows {
        if previous.is_none_or(|prev| prev.job_id != row.job_id) {
            jobs += 1;
            previous = None;
            last_committed = None;
        }
        if let Some(prev) = previous
            && prev.lease_token == row.lease_token
        {
            problem_jobs.push(row.job_id);
            problems.push(format!(
                "{} job {}: lease token {} recorded twice ({} {}, {} {})",
                row.job_type, row.job_id, row.lease_token, prev.worker_id, prev.outcome, row.worker_id, row.outcome
            ));
        }
        if row.outcome == "abandoned" {
            if killed.contains(row.worker_id.as_str()) {
                abandoned_by_killed += 1;
            } else {
                abandoned_by_live += 1;
            }
            if let Some(prev) = previous {
                claim_lock_wait_ms = claim_lock_wait_ms.max(prev.finished_at - row.started_at);
            }
        } else {
            if let Some(prev) = last_committed
                && prev.finished_at > row.started_at
            {
                problem_jobs.push(row.job_id);
                problems.push(format!(
                    "{} job {}: attempt by {} ({}, token {}, {}..{}) overlaps the next by {} ({}, token {}, {}..{})",
                    row.job_type,
                    row.job_id,
                    prev.worker_id,
                    prev.outcome,
                    prev.lease_token,
                    prev.started_at,
                    prev.finished_at,
                    row.worker_id,
                    row.outcome,
                    row.lease_token,
                    row.started_at,
                    row.finished_at
                ));
            }
            last_committed = Some(row);
        }
        previous = Some(row);
    }
    let mut detail = format!(
        "{} attempts of {jobs} jobs, no overlap among holder-committed attempts; {} abandoned leases \
         ({abandoned_by_killed} of killed workers, {abandoned_by_live} expired on live workers and fenced); \
         largest claim lock wait seen {claim_lock_wait_ms} ms",
        rows.len(),
        abandoned_by_killed + abandoned_by_live
    );
    if !problems.is_empty() {
        detail =
            format!("{} problems: {}", problems.len(), problems.iter().take(5).cloned().collect::<Vec<_>>().join("; "));
    }
    let mut orders = Vec::new();
    for job_id in problem_jobs {
        let order: Option<i64> = sqlx::query_scalar("select order_id from jobs where id = $1 and order_id is not null")
            .bind(job_id)
            .fetch_optional(inputs.pool)
            .await?;
        orders.extend(order);
    }
    Ok(Check::judge("no job ran concurrently twice (job_attempts intervals per job)", problems.is_empty(), detail)
        .with_orders(orders))
}

async fn each_move_once(inputs: &Inputs<'_>) -> anyhow::Result<Check> {
    let allowed = [
        (None, "pending"),
        (Some("pending"), "confirmed"),
        (Some("pending"), "cancelled"),
        (Some("confirmed"), "shipped"),
        (Some("confirmed"), "cancelled"),
        (Some("shipped"), "delivered"),
    ];
    let rows: Vec<(i64, Option<String>, String)> =
        sqlx::query_as("select order_id, from_status, to_status from order_status_history order by order_id, id")
            .fetch_all(inputs.pool)
            .await?;
    let statuses = final_statuses(inputs.pool).await?;
    let mut histories: BTreeMap<i64, Vec<(Option<String>, String)>> = BTreeMap::new();
    for (order_id, from, to) in rows {
        histories.entry(order_id).or_default().push((from, to));
    }
    let mut broken = Vec::new();
    let mut examples = Vec::new();
    for (order_id, status) in &statuses {
        let history = histories.get(order_id).map(Vec::as_slice).unwrap_or_default();
        let mut last: Option<&str> = None;
        let mut fault = None;
        for (from, to) in history {
            if !allowed.contains(&(from.as_deref(), to.as_str())) {
                fault = Some(format!("illegal move {from:?} → {to}"));
            } else if from.as_deref() != last {
                fault = Some(format!("move {from:?} → {to} after {last:?}"));
            }
            last = Some(to.as_str());
        }
        if fault.is_none() && last != Some(status.as_str()) {
            fault = Some(format!("history ends at {last:?}, order is {status}"));
        }
        if let Some(fault) = fault {
            broken.push(*order_id);
            if examples.len() < 5 {
                examples.push(format!("order {order_id}: {fault}"));
            }
        }
    }
    let mut detail = format!("{} orders, each history a legal chain ending at the order's status", statuses.len());
    if !examples.is_empty() {
        detail = examples.join("; ");
    }
    Ok(Check::judge("every order moved once per step (status history)", broken.is_empty(), detail).with_orders(broken))
}

async fn notification_once(inputs: &Inputs<'_>) -> anyhow::Result<Check> {
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("select order_id, event, message_id from notifications").fetch_all(inputs.pool).await?;
    let mut per_key: HashMap<(i64, &str), usize> = HashMap::new();
    let mut unstable_ids = Vec::new();
    for (order_id, event, message_id) in &rows {
        *per_key.entry((*order_id, event.as_str())).or_default() += 1;
        if !bare(message_id).starts_with(&format!("order-{order_id}-{event}@")) {
            unstable_ids.push(*order_id);
        }
    }
    let twice: Vec<i64> = per_key.iter().filter(|(_, n)| **n > 1).map(|((order_id, _), _)| *order_id).collect();
    let mut detail = format!("{} notification rows, at most one per (order, event), Message-IDs stable", rows.len());
    if !twice.is_empty() || !unstable_ids.is_empty() {
        detail = format!("recorded twice: [{}]; unexpected Message-ID: [{}]", listed(&twice), listed(&unstable_ids));
    }
    let ok = twice.is_empty() && unstable_ids.is_empty();
    Ok(Check::judge("≤ 1 notification record per (order, event)", ok, detail)
        .with_orders([twice, unstable_ids].concat()))
}

/// A Message-ID without its angle brackets.
fn bare(message_id: &str) -> &str {
    message_id.trim().trim_start_matches('<').trim_end_matches('>')
}

/// Message-ID → how many messages carry it, and how many files had none
/// (a file transport killed mid-write leaves a partial file).
fn mail_message_ids(dir: &Path) -> (HashMap<String, usize>, usize) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut unreadable = 0;
    let Ok(entries) = std::fs::read_dir(dir) else { return (counts, 0) };
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden || path.extension().is_none_or(|e| e != "eml") {
            continue;
        }
        let message_id = std::fs::read(&path).ok().and_then(|raw| {
            let (headers, _) = mailparse::parse_headers(&raw).ok()?;
            headers
                .iter()
                .find(|h| h.get_key().eq_ignore_ascii_case("message-id"))
                .map(|h| bare(&h.get_value()).to_owned())
        });
        match message_id {
            Some(id) => *counts.entry(id).or_default() += 1,
            None => unreadable += 1,
        }
    }
    (counts, unreadable)
}

async fn mail_once(inputs: &Inputs<'_>) -> anyhow::Result<Check> {
    let (counts, unreadable) = mail_message_ids(inputs.mail_dir);
    let rows: Vec<String> = sqlx::query_scalar("select message_id from notifications").fetch_all(inputs.pool).await?;
    let missing: Vec<&String> = rows.iter().filter(|id| !counts.contains_key(bare(id))).collect();
    let mut explained = 0;
    let mut unexplained = Vec::new();
    for (message_id, _) in counts.iter().filter(|(_, n)| **n > 1) {
        // order-ID-EVENT@domain → the notify job's dedup key ID:EVENT.
        let key = message_id
            .split('@')
            .next()
            .and_then(|local| local.strip_prefix("order-"))
            .and_then(|rest| rest.split_once('-'))
            .map(|(order_id, event)| format!("{order_id}:{event}"));
        let resent_after_failure: i64 = match &key {
            Some(key) => {
                sqlx::query_scalar(
                    "select count(*) from job_attempts a join jobs j on j.id = a.job_id
                     where j.job_type = 'notify' and j.dedup_key = $1 and a.outcome in ('abandoned', 'retry')",
                )
                .bind(key)
                .fetch_one(inputs.pool)
                .await?
            }
            None => 0,
        };
        if resent_after_failure > 0 {
            explained += 1;
        } else {
            unexplained.push(message_id.clone());
        }
    }
    let messages: usize = counts.values().sum();
    let mut detail = format!(
        "{messages} messages, {} distinct Message-IDs; {explained} resent after their sender died or lost its lease \
         (at-least-once, same Message-ID); {unreadable} partial files",
        counts.len()
    );
    if !unexplained.is_empty() {
        let _ = write!(
            detail,
            "; sent twice without a failed attempt: {:?}",
            unexplained.iter().take(5).collect::<Vec<_>>()
        );
    }
    if !missing.is_empty() {
        let _ = write!(detail, "; recorded as sent but not received: {:?}", missing.iter().take(5).collect::<Vec<_>>());
    }
    let ok = unexplained.is_empty() && missing.is_empty();
    Ok(Check::judge("no (order, event) e-mail sent twice except at-least-once resends", ok, detail))
}

async fn integrity(inputs: &Inputs<'_>) -> anyhow::Result<Check> {
    if inputs.backend == Backend::Postgres {
        return Ok(outage::postgres_integrity(inputs.pool).await);
    }
    let rows: Vec<String> = sqlx::query_scalar("pragma integrity_check").fetch_all(inputs.pool).await?;
    let ok = rows.len() == 1 && rows[0] == "ok";
    Ok(Check::judge("PRAGMA integrity_check = ok", ok, rows.join("; ")))
}

async fn no_lease_left(inputs: &Inputs<'_>) -> anyhow::Result<Check> {
    let held: Vec<(i64, String, String)> = sqlx::query_as(
        "select id, job_type, status from jobs
         where status = 'running' or lease_owner is not null or lease_expires_at is not null",
    )
    .fetch_all(inputs.pool)
    .await?;
    let detail = if held.is_empty() {
        "no job running, no lease held".to_owned()
    } else {
        let shown: Vec<String> = held.iter().take(LISTED).map(|(id, t, s)| format!("{t} {id} ({s})")).collect();
        format!("{} jobs: {}", held.len(), shown.join(", "))
    };
    Ok(Check::judge("no job left running or leased", held.is_empty(), detail))
}

async fn no_dead_jobs(inputs: &Inputs<'_>) -> anyhow::Result<Check> {
    // None is expected: declines and exhausted charges cancel the order and
    // finish; nothing in this workload fails permanently.
    let dead: Vec<(String, i64, Option<String>)> = sqlx::query_as(
        "select job_type, count(*),
                (select last_error from jobs l where l.job_type = j.job_type and l.status = 'dead' order by l.id desc limit 1)
         from jobs j where status = 'dead' group by job_type order by job_type",
    )
    .fetch_all(inputs.pool)
    .await?;
    let detail = if dead.is_empty() {
        "no dead job (none is expected in this workload)".to_owned()
    } else {
        let shown: Vec<String> =
            dead.iter().map(|(t, n, e)| format!("{n} {t} (last error: {})", e.as_deref().unwrap_or("none"))).collect();
        shown.join("; ")
    };
    Ok(Check::judge("no dead job", dead.is_empty(), detail))
}

fn idempotent_replays(inputs: &Inputs<'_>) -> Check {
    let mismatches = inputs.tally.replay_mismatches();
    let checked = inputs.tally.replays_checked.load(std::sync::atomic::Ordering::Relaxed);
    let detail = if mismatches.is_empty() {
        format!("{checked} replays returned the first order (Idempotent-Replayed: true)")
    } else {
        format!(
            "{} of {checked}: {}",
            mismatches.len(),
            mismatches.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
        )
    };
    Check::judge("Idempotency-Key replays return the first order", mismatches.is_empty(), detail)
}

fn documented_answers(inputs: &Inputs<'_>) -> Check {
    let (count, samples) = inputs.tally.unexpected();
    let detail = if count == 0 {
        "every answer was a documented one (no 5xx, no 429)".to_owned()
    } else {
        format!("{count} unexpected answers: {}", samples.join("; "))
    };
    Check::judge("the API answered as documented", count == 0, detail)
}
