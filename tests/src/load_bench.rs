//! The `load-bench` command (`tests/src/bin/load-bench.rs`): the whole
//! system under HTTP load on this machine — the real `kassa-api` and
//! `kassa-worker` binaries on a fresh temporary SQLite file.
//!
//! For each `synchronous` setting, each run starts a fresh API and measures,
//! in this order:
//! 1. **checkout accept**: `--clients` closed-loop clients with pre-issued
//!    tokens `POST /orders/` one unit of a product with a billion units, for
//!    `--accept-secs`, no worker running (the API and the transactional
//!    enqueue only): accepted/s, p50/p99 latency.
//! 2. **backlog drain**: one worker then processes the orders phase 1
//!    accepted: orders confirmed per second with the API idle.
//! 3. **end to end**: with 1, 2, 4 worker processes running, the clients
//!    place `--e2e-orders` orders; orders/s from the first order's creation
//!    to the last confirmation (timestamps from the database), the same to
//!    the last job finished (the two e-mails included), accepted→confirmed
//!    latency, CPU time per order of each process, and the job attempts by
//!    type (queue wait, run time, share of run time).
//! 4. **search**: `GET /products/` over `--products` products with a mix of
//!    realistic queries, from one client and from `--clients` clients.
//! 5. **order reads**: `GET /orders/{id}` of the phase-1 orders by their
//!    owners, `--clients` clients for `--read-secs`.
//! 6. **peak RSS** (`VmHWM`) of the API (at the end) and of the largest
//!    worker (at the end of each end-to-end phase).
//!
//! Every figure is the median over `--runs` runs, with the range. Payments go
//! to the sandbox gateway with no latency and no failures; e-mails are
//! written as `.eml` files to the outbox (no SMTP). Processes log at `warn`.
//! Every run's values are kept in [`LoadBenchResults`], from which both the
//! tables and the `--json` document are rendered.
//!
//! # Layout
//! - [`phases`]: one run of every phase at one durability.
//! - [`end_to_end`]: phase 3, and the job attempts by type.
//! - [`catalogue`]: the seeded catalogue and the search mix.
//! - [`processes`]: the HTTP target, starting and stopping processes, CPU time.
//! - [`summary`]: the short table for the README.

mod catalogue;
mod end_to_end;
mod phases;
mod processes;
mod summary;

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::load::describe_machine;
use crate::progress::Progress;
use crate::results::Figures;

/// Command-line settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Runs per figure (median and range over them).
    pub runs: usize,
    /// `synchronous` settings to measure, in order.
    pub sync: Vec<&'static str>,
    /// Concurrent closed-loop HTTP clients.
    pub clients: usize,
    /// Customer accounts the clients order as.
    pub users: usize,
    /// Length of the checkout-accept phase, in seconds.
    pub accept_secs: f64,
    /// Orders per end-to-end phase.
    pub e2e_orders: u64,
    /// Worker process counts of the end-to-end phases.
    pub workers: Vec<usize>,
    /// Catalogue size for the search phase.
    pub products: usize,
    /// Search requests from the many clients (a third of it from one client).
    pub search_requests: u64,
    /// Length of the order-reads phase, in seconds.
    pub read_secs: f64,
    /// Extra `KEY=VALUE` environment of the API, for experiments.
    pub api_env: Vec<(String, String)>,
    /// Extra `KEY=VALUE` environment of every worker, for experiments.
    pub worker_env: Vec<(String, String)>,
    /// Print one JSON document instead of the tables.
    pub json: bool,
}

/// Reads the command line (without the program name).
pub fn parse_options(args: impl IntoIterator<Item = String>) -> anyhow::Result<Options> {
    let mut options = Options {
        runs: 3,
        sync: vec!["normal", "full"],
        clients: 64,
        users: 64,
        accept_secs: 3.0,
        e2e_orders: 2_000,
        workers: vec![1, 2, 4],
        products: 10_000,
        search_requests: 3_000,
        read_secs: 3.0,
        api_env: Vec::new(),
        worker_env: Vec::new(),
        json: false,
    };
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "--json" {
            options.json = true;
            continue;
        }
        if flag == "--quick" {
            options.runs = 1;
            options.users = 8;
            options.accept_secs = 2.0;
            options.e2e_orders = 500;
            options.search_requests = 500;
            options.read_secs = 1.0;
            continue;
        }
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        let list = |value: &str| value.split(',').map(str::parse).collect::<Result<Vec<usize>, _>>();
        match flag.as_str() {
            "--runs" => options.runs = value.parse()?,
            "--clients" => options.clients = value.parse()?,
            "--users" => options.users = value.parse()?,
            "--accept-secs" => options.accept_secs = value.parse()?,
            "--e2e-orders" => options.e2e_orders = value.parse()?,
            "--workers" => options.workers = list(&value)?,
            "--products" => options.products = value.parse()?,
            "--search-requests" => options.search_requests = value.parse()?,
            "--read-secs" => options.read_secs = value.parse()?,
            "--api-env" | "--worker-env" => {
                let (key, setting) = value.split_once('=').with_context(|| format!("{flag} takes KEY=VALUE"))?;
                let env = if flag == "--api-env" { &mut options.api_env } else { &mut options.worker_env };
                env.push((key.to_owned(), setting.to_owned()));
            }
            "--sync" => {
                options.sync = value
                    .split(',')
                    .map(|mode| match mode {
                        "normal" => Ok("normal"),
                        "full" => Ok("full"),
                        other => bail!("unknown --sync mode {other:?}"),
                    })
                    .collect::<Result<_, _>>()?
            }
            other => bail!("unknown flag {other}"),
        }
    }
    if options.runs == 0 || options.clients == 0 || options.users == 0 {
        bail!("--runs, --clients and --users must be at least 1");
    }
    Ok(options)
}

impl Options {
    /// Phases in all (each run: setup, accept, drain, one per worker
    /// count, search, reads), for the progress display.
    pub fn steps(&self) -> u64 {
        (self.sync.len() * self.runs * (5 + self.workers.len())) as u64
    }
}

/// The figures of one `synchronous` setting.
#[derive(Clone, Debug, Serialize)]
pub struct SyncResults {
    /// `normal` or `full`.
    pub sync: &'static str,
    /// Every measurement, each with its value in every run.
    pub figures: Figures,
}

/// Everything one invocation measured, and how.
#[derive(Clone, Debug, Serialize)]
pub struct LoadBenchResults {
    /// CPUs, kernel, filesystem and load when the run started.
    pub machine: String,
    /// `debug` or `release`.
    pub profile: String,
    /// Runs per figure.
    pub runs: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Customer accounts.
    pub users: usize,
    /// Catalogue size.
    pub products: usize,
    /// Orders per end-to-end phase.
    pub e2e_orders: u64,
    /// Extra environment of the API.
    pub api_env: Vec<(String, String)>,
    /// Extra environment of the workers.
    pub worker_env: Vec<(String, String)>,
    /// The figures, per `synchronous` setting.
    pub by_sync: Vec<SyncResults>,
    /// The README summary: a title, one cell per setting, a target.
    pub summary: Vec<summary::SummaryRow>,
    /// `/proc/loadavg` at the end.
    pub load_average_at_end: String,
}

/// Runs every phase `options.runs` times per `synchronous` setting,
/// reporting each finished phase to `progress`.
pub async fn run(options: &Options, progress: &Progress) -> anyhow::Result<LoadBenchResults> {
    // Build (or find) the binaries first, outside every measurement.
    let api = crate::binaries::binary("kassa-api");
    let _ = crate::binaries::binary("kassa-worker");
    let profile = api.parent().and_then(|dir| dir.file_name()).map(PathBuf::from).unwrap_or_default();
    let machine = describe_machine(&std::env::temp_dir());
    let mut by_sync = Vec::new();
    for &sync in &options.sync {
        let mut figures = Figures::default();
        for run in 1..=options.runs {
            progress.note(format_args!("synchronous={sync}: run {run} of {}", options.runs));
            phases::run_once(options, sync, &mut figures, progress)
                .await
                .with_context(|| format!("Failed run {run} at {sync}"))?;
        }
        by_sync.push(SyncResults { sync, figures });
    }
    Ok(LoadBenchResults {
        machine,
        profile: profile.display().to_string(),
        runs: options.runs,
        clients: options.clients,
        users: options.users,
        products: options.products,
        e2e_orders: options.e2e_orders,
        api_env: options.api_env.clone(),
        worker_env: options.worker_env.clone(),
        summary: summary::rows(options, &by_sync),
        by_sync,
        load_average_at_end: std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned(),
    })
}

impl LoadBenchResults {
    /// The report for a person: a header, a table per section and setting,
    /// and the summary.
    pub fn print_tables(&self) {
        println!("# load-bench");
        println!();
        println!("machine: {}", self.machine);
        println!(
            "binaries: {} build; {} run(s) per figure (median, range); {} clients, {} customers, {} products, \
             {} orders per end-to-end phase; sandbox gateway without latency or failures; e-mails to the file outbox",
            self.profile, self.runs, self.clients, self.users, self.products, self.e2e_orders
        );
        if !self.api_env.is_empty() || !self.worker_env.is_empty() {
            println!("extra environment: API {:?}, workers {:?}", self.api_env, self.worker_env);
        }
        for SyncResults { sync, figures } in &self.by_sync {
            println!();
            println!("## synchronous={sync}");
            for (section, table) in figures.tables() {
                println!();
                println!("### {section}");
                println!();
                print!("{table}");
            }
        }
        println!();
        println!("## Summary (medians; paste into the README)");
        println!();
        print!("{}", summary::table(&self.by_sync, &self.summary));
        println!();
        println!("load average at the end: {}", self.load_average_at_end);
    }
}
