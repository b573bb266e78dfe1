-- The durable job queue under the apalis workers. Timestamps are Unix
-- milliseconds. The hot indexes are partial so that claim, ack and rescue
-- stay fast however many finished jobs the table holds.

create table jobs (
    id               integer primary key,
    job_type         text    not null,
    -- JSON, decoded by the worker's handler for job_type.
    payload          text    not null,
    status           text    not null default 'pending'
                     check (status in ('pending', 'running', 'succeeded', 'dead', 'discarded')),
    -- Optional key making a second push of the same (job_type, dedup_key) a no-op.
    dedup_key        text,
    -- Attempts started (a claim increments it; a graceful release gives it back).
    attempts         integer not null default 0 check (attempts >= 0),
    -- Not claimable before this instant (retry backoff, delayed jobs).
    run_at           integer not null,
    -- The lease: who holds the job, until when, and the fencing token every
    -- write by the holder must present. The token only ever grows.
    lease_owner      text,
    lease_token      integer not null default 0,
    lease_expires_at integer,
    claimed_at       integer,
    last_error       text,
    created_at       integer not null,
    updated_at       integer not null,
    -- When the job reached succeeded, dead or discarded.
    finished_at      integer
);

create unique index jobs_dedup on jobs (job_type, dedup_key) where dedup_key is not null;
-- Claim order: due first, then insertion order (the rowid).
create index jobs_pending on jobs (run_at) where status = 'pending';
-- Rescue of expired leases.
create index jobs_running on jobs (lease_expires_at) where status = 'running';
-- Operators' view of dead jobs.
create index jobs_dead on jobs (finished_at) where status = 'dead';
-- Retention pruning.
create index jobs_finished on jobs (finished_at) where status in ('succeeded', 'discarded');

-- Every attempt at a job, for the order timeline and for operators.
create table job_attempts (
    id          integer primary key,
    job_id      integer not null references jobs (id) on delete cascade,
    attempt     integer not null,
    lease_token integer not null,
    worker_id   text    not null,
    started_at  integer not null,
    finished_at integer not null,
    duration_ms integer not null,
    -- succeeded | retry (transient failure, rescheduled) | dead | released
    -- (graceful shutdown gave the job back) | abandoned (lease expired)
    outcome     text    not null
                check (outcome in ('succeeded', 'retry', 'dead', 'released', 'abandoned')),
    error       text
);

create index job_attempts_job on job_attempts (job_id);

-- Operators re-queueing or discarding dead jobs, for the audit trail.
create table job_operator_actions (
    id         integer primary key,
    job_id     integer not null references jobs (id) on delete cascade,
    action     text    not null check (action in ('requeue', 'discard')),
    actor      text    not null,
    reason     text,
    created_at integer not null
);

create index job_operator_actions_job on job_operator_actions (job_id);

-- Written only by the diagnostic `probe` job, which the multi-process tests
-- use to prove that no job runs twice at the same time. Empty in production.
create table queue_probe_runs (
    id          integer primary key,
    probe_key   integer not null,
    job_id      integer not null,
    attempt     integer not null,
    worker_id   text    not null,
    started_us  integer not null,
    finished_us integer not null,
    outcome     text    not null
);

create index queue_probe_runs_key on queue_probe_runs (probe_key);
