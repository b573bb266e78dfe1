//! When a failed job runs again: exponential backoff with jitter, capped,
//! up to a per-job-type number of attempts.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;

/// Retry settings for one job type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; after the last one fails the job is dead.
    pub max_attempts: u32,
    /// Delay before the second attempt; each later delay doubles it.
    pub base_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy { max_attempts: 8, base_delay: Duration::from_secs(1), max_delay: Duration::from_secs(600) }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1-based): "full
    /// jitter" between half and all of `base · 2^(attempt-1)`, capped, so that
    /// jobs failing together do not come back together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let ceiling = self.base_delay.saturating_mul(1u32 << exponent).min(self.max_delay);
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        if ceiling_ms < 2 {
            return ceiling;
        }
        let jittered_ms = rand::rng().random_range(ceiling_ms / 2..=ceiling_ms);
        Duration::from_millis(jittered_ms)
    }

    /// Whether attempt number `attempt` (1-based) was the last one allowed.
    pub fn is_last_attempt(&self, attempt: u32) -> bool {
        attempt >= self.max_attempts
    }
}

/// Retry policies by job type, with a default for the others.
#[derive(Clone, Debug, Default)]
pub struct RetryPolicies {
    default: RetryPolicy,
    by_job_type: HashMap<String, RetryPolicy>,
}

impl RetryPolicies {
    /// Policies that all use `default`.
    pub fn new(default: RetryPolicy) -> RetryPolicies {
        RetryPolicies { default, by_job_type: HashMap::new() }
    }

    /// Sets the policy for one job type.
    pub fn set(&mut self, job_type: impl Into<String>, policy: RetryPolicy) {
        self.by_job_type.insert(job_type.into(), policy);
    }

    /// The policy for `job_type`.
    pub fn get(&self, job_type: &str) -> &RetryPolicy {
        self.by_job_type.get(job_type).unwrap_or(&self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        for _ in 0..100 {
            let first = policy.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = policy.backoff(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let tenth = policy.backoff(10);
            assert!(tenth >= Duration::from_millis(500) && tenth <= Duration::from_millis(1000));
        }
        let delays: std::collections::HashSet<_> = (0..50).map(|_| policy.backoff(4)).collect();
        assert!(delays.len() > 1, "jitter spreads retries out");
    }

    #[test]
    fn per_type_policy_overrides_the_default() {
        let mut policies = RetryPolicies::new(RetryPolicy::default());
        let charge = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
        policies.set("charge", charge);
        assert_eq!(policies.get("charge").max_attempts, 3);
        assert_eq!(policies.get("notify"), &RetryPolicy::default());
        assert!(charge.is_last_attempt(3));
        assert!(!charge.is_last_attempt(2));
    }
}
