//! What each process of a run gets: its host, its own data directory, the
//! database URL and mail route as its host reaches them, and the settings
//! every API or every worker shares.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::ChaosConfig;
use super::cluster::{ClusterSpec, Slot};
use super::database::RunDatabase;
use super::hosts::Hosts;

/// The data directory of the host called `name` inside the run's directory.
pub fn host_data_dir(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join("hosts").join(name)
}

fn pairs(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs.iter().map(|(key, value)| ((*key).to_owned(), value.clone())).collect()
}

/// The processes' slots and environments: every API and worker on its own
/// host, with its own data directory, reaching the database (and the SMTP
/// sink) the way its host can.
pub fn cluster_spec(
    config: &ChaosConfig,
    hosts: &Hosts,
    database: &RunDatabase,
    run_dir: &Path,
    mail: &Mail,
) -> anyhow::Result<ClusterSpec> {
    let mut apis = Vec::new();
    for i in 1..=config.apis {
        let host = hosts.get(&format!("api{i}"))?;
        let env = pairs(&[
            ("KASSA_BIND", SocketAddr::new(host.addr, 0).to_string()),
            ("KASSA_DATA_DIR", host_data_dir(run_dir, &host.name).display().to_string()),
            ("KASSA_DATABASE_URL", database.url_for(host)),
        ]);
        apis.push(Slot { host: host.clone(), env });
    }
    let mut workers = Vec::new();
    for i in 1..=config.workers {
        let host = hosts.get(&format!("worker{i}"))?;
        let mut env = pairs(&[
            ("KASSA_DATA_DIR", host_data_dir(run_dir, &host.name).display().to_string()),
            ("KASSA_DATABASE_URL", database.url_for(host)),
            ("KASSA_WORKER_METRICS_BIND", SocketAddr::new(host.addr, 0).to_string()),
        ]);
        env.push(match mail {
            Mail::Smtp(addr) => ("KASSA_SMTP_URL".to_owned(), format!("smtp://{}", host.reach(*addr))),
            // One outbox for every worker, as one mail relay would be.
            Mail::Outbox(dir) => ("KASSA_MAIL_OUTBOX_DIR".to_owned(), dir.display().to_string()),
        });
        workers.push(Slot { host: host.clone(), env });
    }
    let api_env = pairs(&[
        ("KASSA_ADMIN_SECRET", crate::app::ADMIN_SECRET.to_owned()),
        // Every API process signs and checks tokens with the same key.
        ("KASSA_JWT_SECRET", "chaos-run-jwt-secret-shared-by-every-api-process".to_owned()),
        ("KASSA_SQLITE_SYNCHRONOUS", "normal".to_owned()),
        ("KASSA_AUTH_RATE_PER_MIN", "100000".to_owned()),
        ("KASSA_AUTH_BURST", "100000".to_owned()),
        ("KASSA_CHECKOUT_RATE_PER_MIN", "1000000".to_owned()),
        ("KASSA_CHECKOUT_BURST", "1000000".to_owned()),
        ("KASSA_LOG_FORMAT", "text".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]);
    let worker_env = pairs(&[
        ("KASSA_SQLITE_SYNCHRONOUS", "normal".to_owned()),
        ("KASSA_LEASE_SECS", "2".to_owned()),
        ("KASSA_SANDBOX_FAILURE_RATE", config.gateway_failure_rate.to_string()),
        ("KASSA_SANDBOX_LATENCY_MS", config.gateway_latency.as_millis().to_string()),
        // Retries every ≤ 1 s instead of up to minutes, so a run settles quickly.
        ("KASSA_RETRY_BASE_MS", "100".to_owned()),
        ("KASSA_RETRY_MAX_MS", "1000".to_owned()),
        ("KASSA_LOG_FORMAT", "text".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ]);
    Ok(ClusterSpec { apis, workers, api_env, worker_env })
}

/// Where the workers send e-mail.
pub enum Mail {
    /// The SMTP sink at this address on the machine.
    Smtp(SocketAddr),
    /// Files in this directory.
    Outbox(PathBuf),
}
