//! What the queue does differently on SQLite. Claims need no row locks: a
//! claim runs in the process's write transaction, which holds SQLite's
//! single write lock. Job-type lists travel as one JSON array read with
//! `json_each`, which keeps each statement's text fixed. Idle workers of
//! other processes learn of new jobs by polling a cheap read
//! (`queue::wake`); those of this process are woken at once.

/// Claims up to `$5` due jobs of the types in `$4` for worker `$1`, with
/// the lease expiring at `$2`; `$3` is now. The oldest order's jobs first
/// (see migration 0006), walking that index so nothing is sorted; the
/// index is named so the planner cannot take the due-time one and sort.
pub(super) const CLAIM: &str = "update jobs
    set status = 'running', lease_owner = $1, lease_token = lease_token + 1,
        lease_expires_at = $2, claimed_at = $3, attempts = attempts + 1, updated_at = $3
    where id in (
        select id from jobs indexed by jobs_pending_by_order
        where status = 'pending' and run_at <= $3
          and job_type in (select value from json_each($4))
        order by coalesce(order_id, 0), id
        limit $5)
    returning id, job_type, payload, attempts, lease_token, created_at, run_at, last_error,
        coalesce(order_id, 0) as claim_order";

/// `1` when a job of the types in `$2` is due at `$1`.
pub(super) const HAS_DUE: &str = "select 1 from jobs
    where status = 'pending' and run_at <= $1 and job_type in (select value from json_each($2))
    limit 1";

/// Running jobs whose lease expired before `$1`.
pub(super) const EXPIRED: &str = "select id, job_type, attempts, lease_token, lease_owner, claimed_at from jobs
    where status = 'running' and lease_expires_at < $1
    limit 1000";
