//! The processes under fire: one `kassa-api` (a [`TestApp`] on the run's data
//! directory) and N `kassa-worker`s, and the chaos monkey that SIGKILLs a
//! random worker (and, if asked, the API) at random moments and starts a
//! replacement — a new worker id each time, the same data directory always.

use std::any::Any;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::sync::watch;

use super::api::Api;
use super::rng::Rng;
use crate::app::{AppOptions, TestApp};
use crate::process::ChildProcess;

/// What the monkey did, shared with the progress lines and the summary.
#[derive(Debug, Default)]
pub struct ChaosTally {
    /// Workers SIGKILLed (each was replaced).
    pub worker_kills: AtomicU64,
    /// Times the API was SIGKILLed and restarted.
    pub api_restarts: AtomicU64,
    /// Ids of the workers that were killed, to tell their abandoned leases
    /// from leases that expired on a live worker.
    pub killed_worker_ids: Mutex<Vec<String>>,
}

impl ChaosTally {
    /// The killed worker ids so far.
    pub fn killed(&self) -> Vec<String> {
        self.killed_worker_ids.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// How to start the processes.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// The data directory shared by every incarnation of the API.
    pub data_dir: PathBuf,
    /// Worker processes kept running.
    pub workers: usize,
    /// Extra environment of the API.
    pub api_env: Vec<(String, String)>,
    /// Extra environment of every worker.
    pub worker_env: Vec<(String, String)>,
}

/// The running API and workers; every process is killed when dropped.
pub struct Cluster {
    spec: ClusterSpec,
    app: Arc<TestApp>,
    workers: Vec<(String, ChildProcess)>,
    started_workers: usize,
}

/// The message of a panic caught from a helper of the test support code.
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Runs the panicking `TestApp` helpers in a task, so a failure to start a
/// process becomes an error instead of tearing the harness down.
async fn start_api(spec: &ClusterSpec) -> anyhow::Result<TestApp> {
    let mut options = AppOptions { data_dir: Some(spec.data_dir.clone()), ..AppOptions::default() };
    for (key, value) in &spec.api_env {
        options = options.env(key, value);
    }
    tokio::spawn(TestApp::spawn_with(options)).await.map_err(|e| match e.try_into_panic() {
        Ok(payload) => anyhow!("kassa-api did not start: {}", panic_message(payload)),
        Err(e) => anyhow!("kassa-api did not start: {e}"),
    })
}

async fn start_worker(
    app: &Arc<TestApp>,
    worker_id: String,
    env: Vec<(String, String)>,
) -> anyhow::Result<ChildProcess> {
    let app = Arc::clone(app);
    let id = worker_id.clone();
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        app.spawn_worker(&id, &env)
    })
    .await
    .map_err(|e| match e.try_into_panic() {
        Ok(payload) => anyhow!("kassa-worker {worker_id} did not start: {}", panic_message(payload)),
        Err(e) => anyhow!("kassa-worker {worker_id} did not start: {e}"),
    })
}

impl Cluster {
    /// Starts the API, then the workers.
    pub async fn start(spec: ClusterSpec) -> anyhow::Result<Cluster> {
        let app = Arc::new(start_api(&spec).await?);
        let mut cluster = Cluster { spec, app, workers: Vec::new(), started_workers: 0 };
        for _ in 0..cluster.spec.workers {
            let worker = cluster.start_next_worker().await?;
            cluster.workers.push(worker);
        }
        Ok(cluster)
    }

    /// The API's current base URL.
    pub fn base_url(&self) -> String {
        self.app.base_url.clone()
    }

    async fn start_next_worker(&mut self) -> anyhow::Result<(String, ChildProcess)> {
        self.started_workers += 1;
        let worker_id = format!("w{}", self.started_workers);
        let process = start_worker(&self.app, worker_id.clone(), self.spec.worker_env.clone()).await?;
        Ok((worker_id, process))
    }

    /// SIGKILLs the worker at `index` and starts a replacement with a new id;
    /// returns the killed worker's id.
    pub async fn kill_and_replace_worker(&mut self, index: usize) -> anyhow::Result<String> {
        let index = index.min(self.workers.len().saturating_sub(1));
        let replacement = {
            let (_, victim) = self.workers.get_mut(index).context("there is no worker to kill")?;
            victim.kill();
            self.start_next_worker().await?
        };
        let (killed_id, _) = std::mem::replace(&mut self.workers[index], replacement);
        Ok(killed_id)
    }

    /// SIGKILLs the API and starts it again on the same data directory.
    pub async fn kill_and_restart_api(&mut self) -> anyhow::Result<()> {
        self.app.process.signal("KILL");
        let restarted = Arc::new(start_api(&self.spec).await?);
        // Dropping the last handle on the old app reaps its dead process.
        self.app = restarted;
        Ok(())
    }

    /// Ids of the workers running now.
    pub fn worker_ids(&self) -> Vec<String> {
        self.workers.iter().map(|(id, _)| id.clone()).collect()
    }
}

/// The monkey's settings.
#[derive(Clone, Copy, Debug)]
pub struct MonkeyPlan {
    /// Mean time between kills (each wait is uniform in 0.5×–1.5× this).
    pub kill_every: Duration,
    /// Also kill and restart the API: every fifth kill.
    pub kill_api: bool,
}

/// Kills and replaces processes until `stop` turns true; hands the cluster
/// back so the final checks run with every worker alive. On a failed restart
/// it aborts the clients and returns the error.
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
            cluster.kill_and_restart_api().await.map(|()| {
                api.set_base_url(cluster.base_url());
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
