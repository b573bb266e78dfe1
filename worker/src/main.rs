//! `kassa-worker`: runs Kassa's jobs until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use kassa_common::db::DbArgs;
use kassa_worker::telemetry::{self, LogFormat};
use kassa_worker::{WorkerOptions, registry_with_all_jobs};

/// Runs Kassa's background jobs from the shared database.
#[derive(Debug, Parser)]
#[command(name = "kassa-worker", version, about)]
struct Args {
    #[command(flatten)]
    db: DbArgs,

    #[command(flatten)]
    worker: WorkerOptions,

    /// Address for the Prometheus `/metrics` endpoint (port 0: any free port).
    #[arg(long, env = "KASSA_WORKER_METRICS_BIND")]
    metrics_bind: Option<SocketAddr>,

    /// Log format.
    #[arg(long, env = "KASSA_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init_logging(args.log_format);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("kassa-worker failed: {error:#}");
            eprintln!("kassa-worker: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let registry = registry_with_all_jobs();
    let config = args
        .worker
        .with_data_dir(&args.db.data_dir)
        .into_config(&registry)
        .map_err(|error| anyhow::anyhow!("invalid configuration: {error}"))?;
    let metrics = telemetry::install_metrics()?;
    if let Some(bind) = args.metrics_bind {
        telemetry::serve_metrics(bind, metrics).await?;
    }
    let db = args
        .db
        .open()
        .await
        .map_err(|error| anyhow::anyhow!("{}", kassa_common::queue::outcome::error_chain(&error)))?;
    tracing::info!(backend = db.backend().as_str(), database = %db.target(), "database open");
    let result = kassa_worker::run_with_registry(config, db.clone(), registry, kassa_common::shutdown::signal()).await;
    db.close().await;
    result
}
