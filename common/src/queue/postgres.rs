//! What the queue does differently on PostgreSQL, where writers run at the
//! same time on many hosts: a claim locks the rows it takes with
//! `FOR UPDATE SKIP LOCKED`, so concurrent claims take different jobs
//! without waiting on each other, and a rescue skips rows another process
//! is rescuing. New jobs are announced with `NOTIFY` in the pushing
//! transaction (see `queue::enqueue`); [`listen`] turns those into
//! in-process wake-ups, with polling as the fallback.

use std::time::Duration;

use sqlx::postgres::PgListener;

use super::enqueue::NOTIFY_CHANNEL;
use super::wake;
use crate::db::Db;

/// Claims up to `$5` due jobs of the types in `$4` (a JSON array) for
/// worker `$1`, with the lease expiring at `$2`; `$3` is now. The oldest
/// order's jobs first (see migration 0006).
pub(super) const CLAIM: &str = "update jobs
    set status = 'running', lease_owner = $1, lease_token = lease_token + 1,
        lease_expires_at = $2, claimed_at = $3, attempts = attempts + 1, updated_at = $3
    where id in (
        select id from jobs
        where status = 'pending' and run_at <= $3
          and job_type in (select jsonb_array_elements_text($4::jsonb))
        order by coalesce(order_id, 0), id
        limit $5
        for update skip locked)
    returning id, job_type, payload, attempts, lease_token, created_at, run_at, last_error,
        coalesce(order_id, 0) as claim_order";

/// `1` when a job of the types in `$2` is due at `$1`.
pub(super) const HAS_DUE: &str = "select 1 from jobs
    where status = 'pending' and run_at <= $1 and job_type in (select jsonb_array_elements_text($2::jsonb))
    limit 1";

/// Running jobs whose lease expired before `$1`, skipping those another
/// process is rescuing right now.
pub(super) const EXPIRED: &str = "select id, job_type, attempts, lease_token, lease_owner, claimed_at from jobs
    where status = 'running' and lease_expires_at < $1
    limit 1000
    for update skip locked";

/// Listens for new jobs on `db`'s server and wakes this process's idle
/// workers for each, until the returned task is aborted; `None` on SQLite.
/// A lost connection is re-established with backoff, and the workers are
/// woken once after it (notifications sent meanwhile are lost); their
/// polling covers the gap.
pub fn listen(db: &Db) -> Option<tokio::task::JoinHandle<()>> {
    let url = db.server_url()?.to_owned();
    Some(tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            match PgListener::connect(&url).await {
                Ok(mut listener) => match listener.listen(NOTIFY_CHANNEL).await {
                    Ok(()) => {
                        delay = Duration::from_millis(100);
                        // A reconnect may have missed notifications: look once.
                        wake::notify_pushed();
                        loop {
                            match listener.try_recv().await {
                                Ok(Some(_)) => wake::notify_pushed(),
                                // The connection dropped; the next call reconnects.
                                Ok(None) => wake::notify_pushed(),
                                Err(error) => {
                                    tracing::warn!(%error, "lost the job notification channel; reconnecting");
                                    break;
                                }
                            }
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot listen for new jobs; polling meanwhile"),
                },
                Err(error) => tracing::warn!(%error, "cannot connect to listen for new jobs; polling meanwhile"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }))
}
