//! The processes under fire: M `kassa-api` processes and N `kassa-worker`s,
//! each on a host of its own (see [`super::hosts`]), all on the run's one
//! database; and the chaos monkey that SIGKILLs a random worker (and, if
//! asked, an API) at random moments and starts a replacement on the same
//! host — a new worker id each time, the same database always.

use std::any::Any;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::sync::watch;

use super::api::Api;
use super::hosts::Host;
use super::rng::Rng;
use crate::binaries::binary;
use crate::process::ChildProcess;

/// How long a process may take to say it is up.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Starts of one process tried before the harness gives up.
const START_ATTEMPTS: usize = 5;
/// What a process says before it exits because the database went away
/// while it connected or migrated.
const NO_DATABASE: [&str; 3] = [
    "failed to open the database",
    "failed to apply migrations",
    "terminating connection due to administrator command",
];

/// What the monkey did, shared with the progress lines and the summary.
#[derive(Debug, Default)]
pub struct ChaosTally {
    /// Workers SIGKILLed (each was replaced).
    pub worker_kills: AtomicU64,
    /// Times an API was SIGKILLed and restarted.
    pub api_restarts: AtomicU64,
    /// Ids of the workers that were killed, to tell their abandoned leases
    /// from leases that expired on a live worker.
    pub killed_worker_ids: Mutex<Vec<String>>,
    /// Starts that failed because the database was unreachable at that
    /// moment (a cut during startup) and were tried again, as a supervisor
    /// would restart the process.
    pub start_retries: AtomicU64,
}

impl ChaosTally {
    /// The killed worker ids so far.
    pub fn killed(&self) -> Vec<String> {
        self.killed_worker_ids.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Where one process runs and what it gets besides the common environment.
#[derive(Clone, Debug)]
pub struct Slot {
    /// Its host.
    pub host: Host,
    /// Its own environment: database URL as its host reaches it, data directory.
    pub env: Vec<(String, String)>,
}

/// How to start the processes.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// One slot per API process.
    pub apis: Vec<Slot>,
    /// One slot per worker process.
    pub workers: Vec<Slot>,
    /// Environment of every API.
    pub api_env: Vec<(String, String)>,
    /// Environment of every worker.
    pub worker_env: Vec<(String, String)>,
}

/// A running API process.
struct ApiProcess {
    base_url: String,
    process: ChildProcess,
}

/// A running worker process.
struct WorkerProcess {
    worker_id: String,
    metrics_addr: String,
    process: ChildProcess,
}

/// The running APIs and workers; every process is killed when dropped.
pub struct Cluster {
    spec: ClusterSpec,
    apis: Vec<ApiProcess>,
    workers: Vec<WorkerProcess>,
    started_workers: usize,
    tally: Arc<ChaosTally>,
}

/// The message of a panic caught from a helper of the test support code.
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// A command for `binary` on `slot`'s host with only the given environment.
fn command(binary_name: &str, slot: &Slot, common: &[(String, String)]) -> Command {
    let mut command = slot.host.command(&binary(binary_name));
    command.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command.envs(common.iter().chain(&slot.env).map(|(k, v)| (k, v)));
    command
}

/// Starts a process and waits for `needle` in its output in a blocking
/// task, so a process that does not start is an error, not a panic;
/// returns the process and the rest of the line after `needle`.
async fn spawn_and_wait(name: String, command: Command, needle: String) -> anyhow::Result<(ChildProcess, String)> {
    let what = name.clone();
    tokio::task::spawn_blocking(move || {
        let mut process = ChildProcess::spawn(&name, command);
        let rest = process.wait_for_line(&needle, START_TIMEOUT);
        (process, rest)
    })
    .await
    .map_err(|e| match e.try_into_panic() {
        Ok(payload) => anyhow!("{what} did not start: {}", panic_message(payload)),
        Err(e) => anyhow!("{what} did not start: {e}"),
    })
}

/// Like [`spawn_and_wait`], but a process that exits at start because it
/// could not open the database (a cut while it connected or migrated) is
/// started again, as systemd's `Restart=on-failure` would; counted in
/// `tally`.
async fn start_supervised(
    name: &str,
    make_command: impl Fn() -> Command,
    needle: &str,
    tally: &ChaosTally,
) -> anyhow::Result<(ChildProcess, String)> {
    let mut attempt = 1;
    loop {
        match spawn_and_wait(name.to_owned(), make_command(), needle.to_owned()).await {
            Err(error)
                if attempt < START_ATTEMPTS && NO_DATABASE.iter().any(|said| error.to_string().contains(said)) =>
            {
                tally.start_retries.fetch_add(1, Ordering::Relaxed);
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            outcome => return outcome,
        }
    }
}

impl Cluster {
    /// Starts the APIs, then the workers; start retries are counted in `tally`.
    pub async fn start(spec: ClusterSpec, tally: Arc<ChaosTally>) -> anyhow::Result<Cluster> {
        let mut cluster = Cluster { spec, apis: Vec::new(), workers: Vec::new(), started_workers: 0, tally };
        for index in 0..cluster.spec.apis.len() {
            let api = cluster.start_api(index).await?;
            cluster.apis.push(api);
        }
        for index in 0..cluster.spec.workers.len() {
            let worker = cluster.start_next_worker(index).await?;
            cluster.workers.push(worker);
        }
        Ok(cluster)
    }

    async fn start_api(&self, index: usize) -> anyhow::Result<ApiProcess> {
        let slot = &self.spec.apis[index];
        let make_command = || command("kassa-api", slot, &self.spec.api_env);
        let (process, rest) = start_supervised(&slot.host.name, make_command, "listening on ", &self.tally).await?;
        let addr = rest.split_whitespace().next().context("kassa-api logged no address after 'listening on'")?;
        Ok(ApiProcess { base_url: format!("http://{addr}"), process })
    }

    async fn start_next_worker(&mut self, index: usize) -> anyhow::Result<WorkerProcess> {
        self.started_workers += 1;
        let worker_id = format!("w{}", self.started_workers);
        let slot = &self.spec.workers[index];
        let make_command = || {
            let mut command = command("kassa-worker", slot, &self.spec.worker_env);
            command.env("KASSA_WORKER_ID", &worker_id);
            command
        };
        let needle = format!("worker {worker_id} starting");
        let (process, _) = start_supervised(&worker_id, make_command, &needle, &self.tally).await?;
        // The metrics listener is bound (and logged) before the worker starts.
        let metrics_addr = process
            .lines()
            .iter()
            .find_map(|line| line.split("metrics listening on ").nth(1).map(|rest| rest.trim().to_owned()))
            .unwrap_or_else(|| "none".to_owned());
        Ok(WorkerProcess { worker_id, metrics_addr, process })
    }

    /// The APIs' base URLs, in slot order.
    pub fn base_urls(&self) -> Vec<String> {
        self.apis.iter().map(|api| api.base_url.clone()).collect()
    }

    /// The API processes.
    pub fn api_count(&self) -> usize {
        self.apis.len()
    }

    /// SIGKILLs the worker at `index` and starts a replacement with a new id
    /// on the same host; returns the killed worker's id.
    pub async fn kill_and_replace_worker(&mut self, index: usize) -> anyhow::Result<String> {
        let index = index.min(self.workers.len().saturating_sub(1));
        self.workers.get_mut(index).context("there is no worker to kill")?.process.kill();
        let replacement = self.start_next_worker(index).await?;
        let killed = std::mem::replace(&mut self.workers[index], replacement);
        Ok(killed.worker_id)
    }

    /// SIGKILLs the API at `index` and starts it again on the same host;
    /// returns its new base URL.
    pub async fn kill_and_restart_api(&mut self, index: usize) -> anyhow::Result<String> {
        let index = index.min(self.apis.len().saturating_sub(1));
        self.apis.get_mut(index).context("there is no API to kill")?.process.kill();
        let restarted = self.start_api(index).await?;
        let base_url = restarted.base_url.clone();
        self.apis[index] = restarted;
        Ok(base_url)
    }

    /// Ids of the workers running now.
    pub fn worker_ids(&self) -> Vec<String> {
        self.workers.iter().map(|worker| worker.worker_id.clone()).collect()
    }

    /// Where each process runs now, one line each.
    pub fn placements(&self) -> Vec<String> {
        let apis = self.apis.iter().zip(&self.spec.apis).map(|(api, slot)| {
            format!("{}: kassa-api at {}, on {}", slot.host.name, api.base_url, slot.host.describe())
        });
        let workers = self.workers.iter().zip(&self.spec.workers).map(|(worker, slot)| {
            format!(
                "{}: kassa-worker {} (metrics {}), on {}",
                slot.host.name,
                worker.worker_id,
                worker.metrics_addr,
                slot.host.describe()
            )
        });
        apis.chain(workers).collect()
    }

    /// The processes that exited although nobody killed them (a crash, or
    /// giving up when the database went away), with how they exited.
    pub fn exited_on_their_own(&mut self) -> Vec<String> {
        let apis =
            self.apis.iter_mut().zip(&self.spec.apis).map(|(api, slot)| (slot.host.name.clone(), &mut api.process));
        let workers = self.workers.iter_mut().map(|worker| (worker.worker_id.clone(), &mut worker.process));
        let mut exited = Vec::new();
        for (name, process) in apis.chain(workers) {
            if let Some(status) = process.wait_exit(Duration::ZERO) {
                let last: Vec<String> = process.lines().into_iter().rev().take(3).collect();
                exited.push(format!("{name} exited ({status}); last lines: {}", last.join(" | ")));
            }
        }
        exited
    }
}

/// The monkey's settings.
#[derive(Clone, Copy, Debug)]
pub struct MonkeyPlan {
    /// Mean time between kills (each wait is uniform in 0.5×–1.5× this).
    pub kill_every: Duration,
    /// Also kill and restart an API: every fifth kill.
    pub kill_api: bool,
}

/// Kills and replaces processes until `stop` turns true; hands the cluster
/// back so the final checks run with every process alive. On a failed
/// restart it aborts the clients and returns the error.
pub async fn run_monkey(
    mut cluster: Cluster,
    plan: MonkeyPlan,
    mut rng: Rng,
    api: Arc<Api>,
    tally: Arc<ChaosTally>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Cluster> {
    for tick in 1u64.. {
        let wait = plan.kill_every.mul_f64(0.5 + rng.unit());
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return Ok(cluster);
        }
        let outcome = if plan.kill_api && tick.is_multiple_of(5) {
            let index = rng.below(cluster.api_count());
            cluster.kill_and_restart_api(index).await.map(|base_url| {
                api.set_base_url(index, base_url);
                tally.api_restarts.fetch_add(1, Ordering::Relaxed);
            })
        } else {
            let index = rng.below(cluster.workers.len());
            cluster.kill_and_replace_worker(index).await.map(|killed| {
                tally.killed_worker_ids.lock().unwrap_or_else(|e| e.into_inner()).push(killed);
                tally.worker_kills.fetch_add(1, Ordering::Relaxed);
            })
        };
        if let Err(error) = outcome {
            api.abort();
            return Err(error.context("the chaos monkey could not restart a process"));
        }
    }
    Ok(cluster)
}
