//! The worker's settings: flags and `KASSA_*` variables, checked into a
//! [`WorkerConfig`] before anything starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::payments::SandboxConfig;
use kassa_common::queue::RetryPolicy;

use crate::queue::QueueConfig;

use crate::mail::{MailConfig, Mailer};
use crate::registry::Registry;

/// Settings of the job runtime, shared by `kassa-worker` and by
/// `kassa-api --with-worker` (flatten them into the API's arguments).
#[derive(Clone, Debug, clap::Args)]
pub struct WorkerOptions {
    /// Jobs run at once by this process. Jobs mostly wait for the group
    /// commit, so more of them in flight make larger groups: 64 confirmed
    /// about a fifth more orders per second than 32 in the load benchmark.
    #[arg(long, env = "KASSA_WORKER_CONCURRENCY", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,

    /// Comma-separated job types this process runs (default: all).
    #[arg(long, env = "KASSA_JOB_TYPES", value_delimiter = ',')]
    pub job_types: Vec<String>,

    /// Lease length in seconds (fractions allowed); a worker that stops
    /// heartbeating loses its jobs this long after its last heartbeat.
    #[arg(long, env = "KASSA_LEASE_SECS", default_value_t = 30.0)]
    pub lease_secs: f64,

    /// Most jobs taken by one claim.
    #[arg(long, env = "KASSA_CLAIM_BATCH", default_value_t = 128,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub claim_batch: u32,

    /// On SIGTERM, seconds to let running jobs finish before handing them back.
    #[arg(long, env = "KASSA_SHUTDOWN_GRACE_SECS", default_value_t = 20.0)]
    pub shutdown_grace_secs: f64,

    /// Hours succeeded and discarded jobs are kept before being pruned.
    #[arg(long, env = "KASSA_JOB_RETENTION_HOURS", default_value_t = 168.0)]
    pub job_retention_hours: f64,

    /// Attempts per job, the first included, for every job type (default: each type's own).
    #[arg(long, env = "KASSA_JOB_MAX_ATTEMPTS",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub job_max_attempts: Option<u32>,

    /// Per-type attempt limits, e.g. `charge=5,notify=10`.
    #[arg(long, env = "KASSA_JOB_MAX_ATTEMPTS_BY_TYPE", value_delimiter = ',')]
    pub job_max_attempts_by_type: Vec<String>,

    /// Delay before the first retry, in milliseconds; doubles each time.
    #[arg(long, env = "KASSA_RETRY_BASE_MS")]
    pub retry_base_ms: Option<u64>,

    /// Longest delay between retries, in milliseconds.
    #[arg(long, env = "KASSA_RETRY_MAX_MS")]
    pub retry_max_ms: Option<u64>,

    /// This worker's id in leases and attempt history (default: generated).
    #[arg(long, env = "KASSA_WORKER_ID")]
    pub worker_id: Option<String>,

    /// Sandbox payment provider: chance in [0, 1] that a call fails
    /// transiently (before or after it is processed), for load and chaos tests.
    #[arg(long, env = "KASSA_SANDBOX_FAILURE_RATE", default_value_t = 0.0)]
    pub sandbox_failure_rate: f64,

    /// Sandbox payment provider: latency added to every call, in milliseconds.
    #[arg(long, env = "KASSA_SANDBOX_LATENCY_MS", default_value_t = 0)]
    pub sandbox_latency_ms: u64,

    /// SMTP server for customer e-mail: `smtp://host:port`,
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS) or
    /// `smtps://user:pass@host:465`. Without it e-mails are written as .eml
    /// files to the outbox directory.
    #[arg(long, env = "KASSA_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Sender of customer e-mail.
    #[arg(long, env = "KASSA_MAIL_FROM", default_value = "Kassa <orders@kassa.localhost>")]
    pub mail_from: String,

    /// Base URL of links in e-mails.
    #[arg(long, env = "KASSA_PUBLIC_URL", default_value = "http://127.0.0.1:8000")]
    pub public_url: String,

    /// Where .eml files go when no SMTP server is set (default: `outbox` in the data directory).
    #[arg(long, env = "KASSA_MAIL_OUTBOX_DIR")]
    pub mail_outbox_dir: Option<PathBuf>,

    /// Longest wait for the SMTP server, in seconds.
    #[arg(long, env = "KASSA_SMTP_TIMEOUT_SECS", default_value_t = 10.0)]
    pub smtp_timeout_secs: f64,
}

/// Why the worker settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A job type no handler is registered for.
    #[error("unknown job type {name:?} in --job-types/KASSA_JOB_TYPES; known types: {known}")]
    UnknownJobType {
        /// The name given.
        name: String,
        /// The registered types.
        known: String,
    },
    /// A duration that is not a positive number of seconds.
    #[error("{flag} must be a positive number of seconds, got {value}")]
    BadDuration {
        /// The flag.
        flag: &'static str,
        /// The value given.
        value: f64,
    },
    /// A malformed `type=attempts` entry.
    #[error(
        "--job-max-attempts-by-type/KASSA_JOB_MAX_ATTEMPTS_BY_TYPE entry {entry:?} is not TYPE=ATTEMPTS with ATTEMPTS >= 1"
    )]
    BadAttemptsEntry {
        /// The entry.
        entry: String,
    },
    /// The mail settings are unusable.
    #[error("{0}")]
    Mail(String),
    /// A failure rate outside [0, 1].
    #[error("--sandbox-failure-rate/KASSA_SANDBOX_FAILURE_RATE must be between 0 and 1, got {value}")]
    BadFailureRate {
        /// The value given.
        value: f64,
    },
    /// The retry delays contradict each other.
    #[error("--retry-base-ms must be at least 1 and at most --retry-max-ms")]
    BadRetryDelays,
}

/// Checked settings for [`crate::run`].
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The queue runtime's settings (worker id, job types, lease, retry policies…).
    pub queue: QueueConfig,
    /// How long running jobs may finish after shutdown is requested.
    pub shutdown_grace: Duration,
    /// The sandbox payment provider's behaviour.
    pub payments: SandboxConfig,
    /// The mailer for customer e-mail.
    pub mailer: Mailer,
}

impl WorkerOptions {
    /// The built-in defaults, as `kassa-worker` parses them without flags
    /// (`KASSA_*` variables set in the environment still apply).
    pub fn defaults() -> WorkerOptions {
        #[derive(clap::Parser)]
        struct OptionsOnly {
            #[command(flatten)]
            options: WorkerOptions,
        }
        <OptionsOnly as clap::Parser>::parse_from(["kassa-worker"]).options
    }

    /// Puts the mail outbox in `data_dir` unless a directory was given.
    pub fn with_data_dir(mut self, data_dir: &Path) -> WorkerOptions {
        self.mail_outbox_dir.get_or_insert_with(|| data_dir.join("outbox"));
        self
    }

    /// Checks the options against the job types `registry` knows.
    pub fn into_config(self, registry: &Registry) -> Result<WorkerConfig, ConfigError> {
        let known = registry.job_types();
        let job_types: Vec<String> = if self.job_types.iter().all(|name| name.trim().is_empty()) {
            known.iter().map(|name| (*name).to_owned()).collect()
        } else {
            let mut chosen = Vec::new();
            for name in self.job_types.iter().map(|name| name.trim()).filter(|n| !n.is_empty()) {
                if !known.contains(&name) {
                    return Err(ConfigError::UnknownJobType { name: name.to_owned(), known: known.join(", ") });
                }
                if !chosen.iter().any(|chosen: &String| chosen == name) {
                    chosen.push(name.to_owned());
                }
            }
            chosen
        };
        let lease = seconds("--lease-secs", self.lease_secs)?;
        let shutdown_grace = seconds("--shutdown-grace-secs", self.shutdown_grace_secs)?;
        let retention = seconds("--job-retention-hours", self.job_retention_hours * 3600.0)?;

        let mut retry = registry.retry_policies();
        let overrides = self.retry_overrides()?;
        for name in &known {
            let policy = *retry.get(name);
            retry.set(*name, overrides.apply(policy));
        }
        for entry in &self.job_max_attempts_by_type {
            let (name, attempts) = entry
                .split_once('=')
                .and_then(|(name, attempts)| Some((name.trim(), attempts.trim().parse::<u32>().ok()?)))
                .filter(|(_, attempts)| *attempts >= 1)
                .ok_or_else(|| ConfigError::BadAttemptsEntry { entry: entry.clone() })?;
            if !known.contains(&name) {
                return Err(ConfigError::UnknownJobType { name: name.to_owned(), known: known.join(", ") });
            }
            let policy = RetryPolicy { max_attempts: attempts, ..*retry.get(name) };
            retry.set(name, policy);
        }

        let worker_id = self.worker_id.clone().unwrap_or_else(generate_worker_id);
        let mut queue = QueueConfig::new(worker_id, job_types);
        queue.concurrency = self.concurrency;
        queue.claim_batch = self.claim_batch;
        queue.lease = lease;
        queue.retention = retention;
        queue.retry = retry;
        if !(0.0..=1.0).contains(&self.sandbox_failure_rate) {
            return Err(ConfigError::BadFailureRate { value: self.sandbox_failure_rate });
        }
        let payments = SandboxConfig {
            failure_rate: self.sandbox_failure_rate,
            latency: Duration::from_millis(self.sandbox_latency_ms),
        };
        let mail = MailConfig {
            smtp_url: self.smtp_url.clone().filter(|url| !url.trim().is_empty()),
            from: self.mail_from.parse().map_err(|e| ConfigError::Mail(format!("--mail-from/KASSA_MAIL_FROM: {e}")))?,
            public_url: self.public_url.clone(),
            outbox_dir: self.mail_outbox_dir.clone().unwrap_or_else(|| PathBuf::from("data/outbox")),
            smtp_timeout: seconds("--smtp-timeout-secs", self.smtp_timeout_secs)?,
        };
        let mailer = Mailer::new(&mail).map_err(ConfigError::Mail)?;
        Ok(WorkerConfig { queue, shutdown_grace, payments, mailer })
    }

    fn retry_overrides(&self) -> Result<RetryOverrides, ConfigError> {
        if let (Some(base), Some(max)) = (self.retry_base_ms, self.retry_max_ms)
            && base > max
        {
            return Err(ConfigError::BadRetryDelays);
        }
        if self.retry_base_ms == Some(0) {
            return Err(ConfigError::BadRetryDelays);
        }
        Ok(RetryOverrides {
            max_attempts: self.job_max_attempts,
            base_delay: self.retry_base_ms.map(Duration::from_millis),
            max_delay: self.retry_max_ms.map(Duration::from_millis),
        })
    }
}

/// Global retry settings given on the command line, over each type's own policy.
struct RetryOverrides {
    max_attempts: Option<u32>,
    base_delay: Option<Duration>,
    max_delay: Option<Duration>,
}

impl RetryOverrides {
    fn apply(&self, policy: RetryPolicy) -> RetryPolicy {
        let base_delay = self.base_delay.unwrap_or(policy.base_delay);
        RetryPolicy {
            max_attempts: self.max_attempts.unwrap_or(policy.max_attempts),
            base_delay,
            max_delay: self.max_delay.unwrap_or(policy.max_delay).max(base_delay),
        }
    }
}

fn seconds(flag: &'static str, value: f64) -> Result<Duration, ConfigError> {
    if !(value.is_finite() && value > 0.0) {
        return Err(ConfigError::BadDuration { flag, value });
    }
    Duration::try_from_secs_f64(value).map_err(|_| ConfigError::BadDuration { flag, value })
}

/// `kassa-worker-<pid>-<random>`: unique across restarts and machines.
fn generate_worker_id() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("kassa-worker-{}-{}", std::process::id(), &random[..8])
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        options: WorkerOptions,
    }

    fn config(args: &[&str]) -> Result<WorkerConfig, ConfigError> {
        let cli =
            Cli::try_parse_from(std::iter::once("kassa-worker").chain(args.iter().copied())).expect("arguments parse");
        cli.options.into_config(&crate::registry_with_all_jobs())
    }

    #[test]
    fn defaults_take_every_job_type_with_a_30_second_lease() {
        let config = config(&[]).expect("valid");
        assert_eq!(config.queue.job_types, crate::registry_with_all_jobs().job_types());
        assert!(config.queue.job_types.iter().any(|t| t == "charge"));
        assert_eq!(config.queue.lease, Duration::from_secs(30));
        assert_eq!(config.queue.concurrency, 64);
        assert!(config.queue.worker_id.starts_with("kassa-worker-"));
    }

    #[test]
    fn job_types_lease_and_attempts_are_configurable() {
        let config = config(&[
            "--job-types",
            "probe",
            "--lease-secs",
            "1.5",
            "--job-max-attempts",
            "4",
            "--job-max-attempts-by-type",
            "noop=2",
            "--retry-base-ms",
            "50",
        ])
        .expect("valid");
        assert_eq!(config.queue.job_types, vec!["probe"]);
        assert_eq!(config.queue.lease, Duration::from_millis(1500));
        assert_eq!(config.queue.retry.get("probe").max_attempts, 4);
        assert_eq!(config.queue.retry.get("probe").base_delay, Duration::from_millis(50));
        assert_eq!(config.queue.retry.get("noop").max_attempts, 2);
    }

    #[test]
    fn unknown_job_types_and_nonsense_durations_are_refused() {
        assert!(matches!(config(&["--job-types", "noop,teleport"]), Err(ConfigError::UnknownJobType { .. })));
        assert!(matches!(config(&["--lease-secs=-1"]), Err(ConfigError::BadDuration { .. })));
        assert!(matches!(config(&["--job-max-attempts-by-type", "noop"]), Err(ConfigError::BadAttemptsEntry { .. })));
        assert!(matches!(
            config(&["--retry-base-ms", "500", "--retry-max-ms", "100"]),
            Err(ConfigError::BadRetryDelays)
        ));
    }
}
