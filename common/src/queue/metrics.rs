//! The queue's Prometheus metric names and their help texts. Both binaries
//! call [`describe`] once at start so every metric carries its HELP line.

/// Attempts started, by `job_type`.
pub const JOBS_STARTED: &str = "kassa_jobs_started_total";
/// Attempts that succeeded, by `job_type`.
pub const JOBS_SUCCEEDED: &str = "kassa_jobs_succeeded_total";
/// Attempts that failed transiently and were rescheduled, by `job_type`.
pub const JOBS_RETRIED: &str = "kassa_jobs_retried_total";
/// Jobs that became dead, by `job_type`.
pub const JOBS_DEAD: &str = "kassa_jobs_dead_total";
/// Jobs pushed, by `job_type`.
pub const JOBS_ENQUEUED: &str = "kassa_jobs_enqueued_total";
/// Handler run time in seconds, by `job_type`.
pub const JOB_DURATION: &str = "kassa_job_duration_seconds";
/// Jobs per non-empty claim.
pub const CLAIM_BATCH_SIZE: &str = "kassa_job_claim_batch_size";
/// Time from a job being due to its handler starting, by `job_type`.
pub const JOB_START_DELAY: &str = "kassa_job_start_delay_seconds";
/// Jobs whose expired lease was rescued.
pub const LEASE_RESCUES: &str = "kassa_lease_rescues_total";
/// Results dropped because the lease had passed to another worker.
pub const LEASES_LOST: &str = "kassa_leases_lost_total";
/// Database-busy retries.
pub const SQLITE_BUSY_RETRIES: &str = crate::db::BUSY_RETRIES;
/// Jobs by `job_type` and `state` (pending, running, dead), sampled from the database.
pub const QUEUE_DEPTH: &str = "kassa_queue_depth";
/// Age of the oldest due pending job, by `job_type`, sampled from the database.
pub const OLDEST_PENDING_AGE: &str = "kassa_queue_oldest_pending_age_seconds";
/// Finished jobs deleted by retention.
pub const JOBS_PRUNED: &str = "kassa_jobs_pruned_total";

/// Registers the help text of every queue metric with the installed recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(JOBS_STARTED, "Job attempts started, by job type.");
    describe_counter!(JOBS_SUCCEEDED, "Job attempts that succeeded, by job type.");
    describe_counter!(
        JOBS_RETRIED,
        "Job attempts that failed transiently and were rescheduled with backoff, by job type."
    );
    describe_counter!(
        JOBS_DEAD,
        "Jobs that became dead (permanent failure, attempts exhausted or undecodable payload), by job type."
    );
    describe_counter!(JOBS_ENQUEUED, "Jobs pushed onto the queue, by job type.");
    describe_histogram!(JOB_DURATION, Unit::Seconds, "Job handler run time, by job type.");
    describe_histogram!(CLAIM_BATCH_SIZE, Unit::Count, "Jobs claimed per non-empty claim.");
    describe_histogram!(
        JOB_START_DELAY,
        Unit::Seconds,
        "Time from a job being due to its handler starting, by job type."
    );
    describe_counter!(LEASE_RESCUES, "Running jobs made claimable again because their worker's lease expired.");
    describe_counter!(LEASES_LOST, "Job results or heartbeats refused because another worker holds the lease now.");
    describe_counter!(SQLITE_BUSY_RETRIES, "Operations retried because SQLite reported the database busy or locked.");
    describe_gauge!(QUEUE_DEPTH, "Jobs by type and state (pending, running, dead), sampled from the database.");
    describe_gauge!(
        OLDEST_PENDING_AGE,
        Unit::Seconds,
        "Age of the oldest due pending job (0 when none waits), by job type, sampled from the database."
    );
    describe_counter!(JOBS_PRUNED, "Finished jobs deleted after the retention period.");
}

/// Creates every queue counter at zero (per job type where labelled), so
/// that a scrape shows them before the first event and rates start from 0.
pub fn register_zeroes(job_types: &[String]) {
    for job_type in job_types {
        for name in [JOBS_STARTED, JOBS_SUCCEEDED, JOBS_RETRIED, JOBS_DEAD] {
            ::metrics::counter!(name, "job_type" => job_type.clone()).increment(0);
        }
    }
    for name in [LEASE_RESCUES, LEASES_LOST, SQLITE_BUSY_RETRIES, JOBS_PRUNED] {
        ::metrics::counter!(name).increment(0);
    }
}
