//! The checks issue 14 added for a database that goes away and processes
//! on several hosts: no 500 and no 503 but right after a cut, nothing
//! acknowledged lost around a cut, no process that gave up, and
//! PostgreSQL's `amcheck` in place of `PRAGMA integrity_check`.

use std::fmt::Write as _;
use std::time::Duration;

use kassa_common::db::Pool;

use super::{Check, Inputs, LISTED, STABLE, Verdict, final_statuses, listed};
use crate::chaos::api::ServerError;
use crate::chaos::database::Cut;

/// How long after a database cut a 503 is still the cut's doing: the pools
/// notice dead sessions on their next use and reconnect within a second.
pub const CUT_WINDOW: Duration = Duration::from_secs(10);
/// Orders acknowledged this soon after a cut count as acknowledged around it.
const AROUND_A_CUT: Duration = Duration::from_secs(1);

/// PostgreSQL's counterpart of `PRAGMA integrity_check`: the `amcheck`
/// extension's heap check on every table and B-tree check (with heap
/// cross-check) on every index of the schema. Skipped when the extension
/// cannot be installed (not a superuser, contrib missing).
pub(super) async fn postgres_integrity(pool: &Pool) -> Check {
    let name = "amcheck: verify_heapam and bt_index_check clean";
    if let Err(error) = sqlx::query("create extension if not exists amcheck").execute(pool).await {
        let detail = format!("the amcheck extension is not available: {error}");
        return Check { name, verdict: Verdict::Skip, detail, orders: Vec::new() };
    }
    let heap: Result<Vec<(String, String)>, sqlx::Error> = sqlx::query_as(
        "select c.relname::text, v.msg from pg_class c
         join pg_namespace n on n.oid = c.relnamespace
         cross join lateral verify_heapam(c.oid) v
         where c.relkind = 'r' and n.nspname = current_schema()",
    )
    .fetch_all(pool)
    .await;
    let indexes: Result<Vec<(String, String)>, sqlx::Error> = sqlx::query_as(
        "select c.relname::text, bt_index_check(c.oid, true)::text from pg_index i
         join pg_class c on c.oid = i.indexrelid
         join pg_am am on am.oid = c.relam
         join pg_namespace n on n.oid = c.relnamespace
         where am.amname = 'btree' and n.nspname = current_schema()",
    )
    .fetch_all(pool)
    .await;
    match (heap, indexes) {
        (Ok(heap), Ok(indexes)) if heap.is_empty() => {
            Check::judge(name, true, format!("every table's heap and {} B-tree indexes verified", indexes.len()))
        }
        (Ok(heap), Ok(_)) => {
            let shown: Vec<String> = heap.iter().take(LISTED).map(|(table, msg)| format!("{table}: {msg}")).collect();
            Check::judge(name, false, format!("{} heap corruptions: {}", heap.len(), shown.join("; ")))
        }
        (Err(error), _) | (_, Err(error)) => Check::judge(name, false, format!("amcheck failed: {error}")),
    }
}

pub(super) fn no_server_error(inputs: &Inputs<'_>) -> Check {
    judge_server_errors(inputs.server_errors, inputs.cuts.unwrap_or_default())
}

/// Every 5xx must be a 503 that came at most [`CUT_WINDOW`] after a cut.
fn judge_server_errors(server_errors: &[ServerError], cuts: &[Cut]) -> Check {
    let name = "no 500; 503 only while the database was cut";
    let mut explained = 0;
    let mut longest_after_cut = Duration::ZERO;
    let mut unexplained = Vec::new();
    for error in server_errors {
        let cut = cuts.iter().rev().find(|cut| cut.at <= error.at);
        match cut.map(|cut| error.at - cut.at) {
            Some(after) if error.status == 503 && after <= CUT_WINDOW => {
                explained += 1;
                longest_after_cut = longest_after_cut.max(after);
            }
            _ => unexplained.push(error.what.clone()),
        }
    }
    let mut detail = format!(
        "{} 5xx answers: {explained} were 503 within {}s of a database cut (the latest {:.1}s after it)",
        server_errors.len(),
        CUT_WINDOW.as_secs(),
        longest_after_cut.as_secs_f64()
    );
    if !unexplained.is_empty() {
        let shown: Vec<String> = unexplained.iter().take(5).cloned().collect();
        let _ = write!(detail, "; {} others: {}", unexplained.len(), shown.join("; "));
    }
    Check::judge(name, unexplained.is_empty(), detail)
}

pub(super) async fn cuts_lost_nothing(inputs: &Inputs<'_>) -> anyhow::Result<Check> {
    let name = "database cuts lost no acknowledged order";
    let Some(cuts) = inputs.cuts else {
        let detail = "no --cut-db-every: the database was never cut".to_owned();
        return Ok(Check { name, verdict: Verdict::Skip, detail, orders: Vec::new() });
    };
    let statuses = final_statuses(inputs.pool).await?;
    let sessions: u64 = cuts.iter().map(|cut| cut.sessions).sum();
    let around: Vec<i64> = inputs
        .tally
        .orders()
        .iter()
        .filter(|order| {
            cuts.iter().any(|cut| cut.at <= order.accepted_at && order.accepted_at - cut.at <= AROUND_A_CUT)
        })
        .map(|order| order.order_id)
        .collect();
    let broken: Vec<i64> = around
        .iter()
        .copied()
        .filter(|id| statuses.get(id).is_none_or(|status| !STABLE.contains(&status.as_str())))
        .collect();
    let unavailable = inputs.tally.unavailable.load(std::sync::atomic::Ordering::Relaxed);
    let mut detail = format!(
        "{} cuts terminated {sessions} sessions; {} orders acknowledged within {}s after a cut, {} of them stable; \
         {unavailable} order attempts without a key answered 503",
        cuts.len(),
        around.len(),
        AROUND_A_CUT.as_secs(),
        around.len() - broken.len()
    );
    if !broken.is_empty() {
        let _ = write!(detail, "; lost or not stable: [{}]", listed(&broken));
    }
    let ok = !cuts.is_empty() && sessions > 0 && broken.is_empty();
    if cuts.is_empty() || sessions == 0 {
        detail.push_str("; the database was never really cut");
    }
    Ok(Check::judge(name, ok, detail).with_orders(broken))
}

pub(super) fn no_process_gave_up(inputs: &Inputs<'_>) -> Check {
    let detail = if inputs.exited.is_empty() {
        "every process not killed by the monkey was still running at the end".to_owned()
    } else {
        inputs.exited.join("; ")
    };
    Check::judge("no process exited on its own", inputs.exited.is_empty(), detail)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{CUT_WINDOW, Verdict, judge_server_errors};
    use crate::chaos::api::ServerError;
    use crate::chaos::database::Cut;

    fn answer(at: Instant, status: u16) -> ServerError {
        ServerError { at, status, what: format!("POST /orders/ → {status}") }
    }

    #[test]
    fn a_503_soon_after_a_database_cut_is_allowed() {
        let cut = Instant::now();
        let errors = [answer(cut + Duration::from_millis(300), 503), answer(cut + CUT_WINDOW, 503)];
        let check = judge_server_errors(&errors, &[Cut { at: cut, sessions: 12 }]);
        assert_eq!(check.verdict, Verdict::Pass, "{}", check.detail);
    }

    #[test]
    fn a_500_fails_even_right_after_a_cut() {
        let cut = Instant::now();
        let errors = [answer(cut + Duration::from_millis(10), 500)];
        let check = judge_server_errors(&errors, &[Cut { at: cut, sessions: 12 }]);
        assert_eq!(check.verdict, Verdict::Fail);
        assert!(check.detail.contains("→ 500"), "{}", check.detail);
    }

    #[test]
    fn a_503_long_after_the_last_cut_or_without_any_cut_fails() {
        let cut = Instant::now();
        let late = [answer(cut + CUT_WINDOW + Duration::from_secs(1), 503)];
        assert_eq!(judge_server_errors(&late, &[Cut { at: cut, sessions: 3 }]).verdict, Verdict::Fail);
        assert_eq!(judge_server_errors(&late, &[]).verdict, Verdict::Fail);
    }
}
