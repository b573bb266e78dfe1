//! `chaos`: Kassa under fire. Starts M real APIs and N workers, each on a
//! host of its own (`--hosts netns`: a network namespace each), on a temp
//! SQLite database or a fresh database on a PostgreSQL server
//! (`--database`), drives a mixed workload over every API while SIGKILLing
//! workers (and with `--kill-api` the APIs) and, with `--cut-db-every`,
//! terminating every database session, waits for quiescence, checks every invariant and
//! prints a summary table; exits 1 on any violation. Progress goes to
//! standard error (a bar on a terminal, a line every `--progress-every`
//! otherwise); `--json` prints the report as one JSON document instead of
//! the table. See `docs/chaos.md`.
//!
//! ```text
//! cargo run --release -p tests --bin chaos -- --orders 2000 --workers 3 --kill-every 1s [--json]
//! cargo run --release -p tests --bin chaos -- --database postgres://postgres@127.0.0.1:5432/postgres \
//!     --hosts netns --apis 2 --workers 3 --kill-api --cut-db-every 3s --orders 1000
//! ```

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kassa_tests::chaos::{self, ChaosConfig, HostMode, parse_duration};
use kassa_tests::progress::ProgressMode;

/// Kassa's chaos harness: a mixed workload under SIGKILL, then every invariant checked.
#[derive(Debug, Parser)]
#[command(name = "chaos")]
struct Args {
    /// Order attempts (direct orders and cart checkouts).
    #[arg(long, default_value_t = 2000)]
    orders: usize,
    /// Worker processes kept running.
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// API processes kept running; requests are spread over them.
    #[arg(long, default_value_t = 1)]
    apis: usize,
    /// Where the processes live: `netns` (a network namespace each, needs
    /// root) or `loopback` (a 127.0.0.x address each).
    #[arg(long, value_enum, default_value = "loopback")]
    hosts: HostMode,
    /// Run on this PostgreSQL server, in a fresh database created for the
    /// run (and dropped after it), e.g. postgres://postgres@127.0.0.1:5432/postgres.
    /// SQLite when absent.
    #[arg(long)]
    database: Option<String>,
    /// Keep the PostgreSQL database after the run (its URL is printed).
    #[arg(long)]
    keep_database: bool,
    /// Mean time between cuts of every Kassa session of the database
    /// (`pg_terminate_backend`), PostgreSQL only: 3s.
    #[arg(long, value_parser = parse_duration)]
    cut_db_every: Option<Duration>,
    /// Customer accounts ordering concurrently.
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// Mean time between SIGKILLs (each wait is uniform in 0.5×–1.5×): 500ms, 1s, 2s.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    kill_every: Duration,
    /// Also SIGKILL and restart an API (every fifth kill).
    #[arg(long)]
    kill_api: bool,
    /// Keep killing after the workload until this many workers were killed.
    #[arg(long, default_value_t = 0)]
    min_kills: u64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Longest the run may take (building the binaries excluded).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
    /// Send e-mail to a real SMTP server (started in this process) instead of the outbox.
    #[arg(long)]
    smtp: bool,
    /// Chance in [0, 1] that a sandbox gateway call fails transiently.
    #[arg(long, default_value_t = 0.1)]
    gateway_failure_rate: f64,
    /// Latency added to every sandbox gateway call.
    #[arg(long, default_value = "5ms", value_parser = parse_duration)]
    gateway_latency: Duration,
    /// Time between progress lines when standard error is not a terminal.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    progress_every: Duration,
    /// Print the report as one JSON document on standard output, not as a table.
    #[arg(long)]
    json: bool,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let config = ChaosConfig {
        orders: args.orders,
        workers: args.workers,
        apis: args.apis,
        hosts: args.hosts,
        database: args.database,
        keep_database: args.keep_database,
        cut_db_every: args.cut_db_every,
        users: args.users,
        kill_every: args.kill_every,
        kill_api: args.kill_api,
        min_worker_kills: args.min_kills,
        seed: args.seed,
        timeout: args.timeout,
        smtp: args.smtp,
        gateway_failure_rate: args.gateway_failure_rate,
        gateway_latency: args.gateway_latency,
        progress_every: args.progress_every,
        progress: ProgressMode::Auto,
        keep_failed_data: true,
    };
    let report = chaos::run(&config).await.context("The chaos harness could not run")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json()).context("Failed to render the report")?);
    } else {
        println!("{report}");
    }
    Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
