//! The load generator behind the `load-bench` binary: many concurrent HTTP
//! clients (tokio tasks sharing one `reqwest::Client`) that each time every
//! request, plus the small measurements around it — percentiles, a
//! process's peak RSS, and a description of the machine.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

/// When a load run stops.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    /// After this many requests in all (successful or not).
    Requests(u64),
    /// When this much time has passed since the start; requests in flight finish.
    Time(Duration),
}

/// What a load run measured.
#[derive(Debug)]
pub struct LoadReport<T> {
    /// The value of every successful request, in no particular order.
    pub outputs: Vec<T>,
    /// Latency of every successful request in milliseconds, sorted.
    pub latencies_ms: Vec<f64>,
    /// Failed requests.
    pub failures: u64,
    /// The first few failures' messages.
    pub failure_samples: Vec<String>,
    /// From the start to the end of the last request.
    pub elapsed: Duration,
}

impl<T> LoadReport<T> {
    /// Successful requests per second.
    pub fn rate_per_sec(&self) -> f64 {
        self.latencies_ms.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at quantile `p` (0.0–1.0) in milliseconds; 0 without samples.
    pub fn latency_ms(&self, p: f64) -> f64 {
        percentile(&self.latencies_ms, p)
    }
}

/// Runs `request(client_index, sequence_number)` from `clients` concurrent
/// tasks, each sending its next request as soon as the previous one has
/// answered (a closed loop, as real clients with keep-alive connections do),
/// until `budget` is spent.
pub async fn run_load<T, F, Fut>(clients: usize, budget: Budget, request: F) -> LoadReport<T>
where
    T: Send + 'static,
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let request = Arc::new(request);
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let request = Arc::clone(&request);
        let issued = Arc::clone(&issued);
        tasks.push(tokio::spawn(async move {
            let mut outputs = Vec::new();
            let mut latencies_ms = Vec::new();
            let mut failures = 0_u64;
            let mut failure_samples = Vec::new();
            loop {
                let sequence = issued.fetch_add(1, Ordering::Relaxed);
                let more = match budget {
                    Budget::Requests(total) => sequence < total,
                    Budget::Time(limit) => started.elapsed() < limit,
                };
                if !more {
                    break;
                }
                let sent = Instant::now();
                match request(client, sequence).await {
                    Ok(output) => {
                        latencies_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
                        outputs.push(output);
                    }
                    Err(error) => {
                        failures += 1;
                        if failure_samples.len() < 3 {
                            failure_samples.push(format!("{error:#}"));
                        }
                    }
                }
            }
            (outputs, latencies_ms, failures, failure_samples, started.elapsed())
        }));
    }
    let mut report = LoadReport {
        outputs: Vec::new(),
        latencies_ms: Vec::new(),
        failures: 0,
        failure_samples: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        match task.await {
            Ok((outputs, latencies_ms, failures, samples, finished)) => {
                report.outputs.extend(outputs);
                report.latencies_ms.extend(latencies_ms);
                report.failures += failures;
                report.failure_samples.extend(samples.into_iter().take(3 - report.failure_samples.len().min(3)));
                report.elapsed = report.elapsed.max(finished);
            }
            Err(error) => {
                report.failures += 1;
                report.failure_samples.push(format!("a client task failed: {error}"));
            }
        }
    }
    report.latencies_ms.sort_by(f64::total_cmp);
    report
}

/// The value at quantile `p` (0.0–1.0) of sorted `values`, nearest rank; 0
/// when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The median of `values` (unsorted); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile(&sorted, 0.5)
}

/// Peak resident set size (`VmHWM`) of process `pid` in MiB.
pub fn peak_rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("Failed to read /proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .context("Failed to find VmHWM in /proc/PID/status")?
        .parse()
        .context("Failed to parse VmHWM")?;
    Ok(kib / 1024.0)
}

/// Resets the peak RSS of process `pid` to its current RSS (`echo 5 >
/// /proc/PID/clear_refs`), so the next [`peak_rss_mib`] covers one phase only.
pub fn reset_peak_rss(pid: u32) -> anyhow::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("Failed to reset the peak RSS of process {pid}"))
}

/// One line about the machine: CPUs, CPU model, kernel, the filesystem
/// holding `dir`, and the load average when the run starts.
pub fn describe_machine(dir: &Path) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|cpuinfo| {
            cpuinfo
                .lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown kernel".to_owned(), |release| release.trim().to_owned());
    let load = std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_owned(),
        |loadavg| loadavg.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    );
    format!("{cpus} CPUs ({model}), Linux {kernel}, temp dir on {}, load average {load}", filesystem_of(dir))
}

/// The filesystem type and device of the mount holding `dir` (longest
/// matching mount point in `/proc/mounts`).
fn filesystem_of(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return "an unknown filesystem".to_owned();
    };
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let device = fields.next()?;
            let mount_point = fields.next()?;
            let fs_type = fields.next()?;
            dir.starts_with(mount_point).then(|| (mount_point.len(), format!("{fs_type} ({device} at {mount_point})")))
        })
        .max_by_key(|(length, _)| *length)
        .map_or_else(|| "an unknown filesystem".to_owned(), |(_, described)| described)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 0.5), 51.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.99), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }

    #[tokio::test]
    async fn a_request_budget_is_spent_exactly() {
        let report = run_load(8, Budget::Requests(100), |client, sequence| async move {
            if sequence % 10 == 0 { anyhow::bail!("failure {sequence}") } else { Ok(client) }
        })
        .await;
        assert_eq!(report.latencies_ms.len(), 90);
        assert_eq!(report.failures, 10);
        assert_eq!(report.failure_samples.len(), 3);
    }

    #[test]
    fn the_machine_names_its_filesystem() {
        assert!(describe_machine(Path::new("/")).contains("temp dir on "));
    }
}
