//! The `load-bench` command (`tests/src/bin/load-bench.rs`): the whole
//! system under HTTP load on this machine — the real `kassa-api` and
//! `kassa-worker` binaries on a fresh temporary SQLite file, and with
//! `--database postgres://…` also on a fresh database created on that
//! PostgreSQL server (dropped afterwards), reported side by side.
//!
//! For each setup (SQLite at each `synchronous` setting, then PostgreSQL),
//! each run measures, in this order:
//! 0. **baseline**: before any Kassa process starts, bare sqlx on a fresh
//!    database of the same backend (on SQLite a file with Kassa's pragmas),
//!    one connection, each transaction inserting one order row and one job
//!    row, for `--baseline-secs`: transactions/s. Accept, drain and end to
//!    end are also shown as a ratio to it.
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
//! 4. **open loop**: one worker process runs while orders are sent on a
//!    fixed schedule, `--open-loop-rate` per second for `--open-loop-secs`
//!    (each request spawned at its tick whether or not earlier ones have
//!    answered): the achieved rate and accepted→confirmed p50/p99 from the
//!    database's timestamps.
//! 5. **search**: `GET /products/` over `--products` products with a mix of
//!    realistic queries, from one client and from `--clients` clients.
//! 6. **order reads**: `GET /orders/{id}` of the phase-1 orders by their
//!    owners, `--clients` clients for `--read-secs`.
//! 7. **`--with-worker`**: the API restarted on the same data as `kassa-api
//!    --with-worker` (no separate worker), and the clients place
//!    `--e2e-orders` orders as in phase 3: the end-to-end rate, and how many
//!    of them were confirmed when the load stopped.
//! 8. **peak RSS** (`VmHWM`) of the API and of the largest worker, per phase.
//!
//! Every phase with a worker also counts its **lost leases**
//! (`kassa_leases_lost_total` from each worker's `/metrics`, or the API's
//! with `--with-worker`), printed per run; the target is 0.
//!
//! Every figure is the median over `--runs` runs, with the range. Payments go
//! to the sandbox gateway with no latency and no failures; e-mails are
//! written as `.eml` files to the outbox (no SMTP). Processes log at `warn`.
//! Every run's values are kept in [`LoadBenchResults`], from which both the
//! tables and the `--json` document are rendered.
//!
//! # Layout
//! - [`phases`]: one run of every phase on one setup.
//! - [`baseline`]: phase 0, bare sqlx.
//! - [`end_to_end`]: phase 3, and the job attempts by type.
//! - [`open_loop`]: phase 4.
//! - [`with_worker`]: phase 7.
//! - [`catalogue`]: the seeded catalogue and the search mix.
//! - [`processes`]: the HTTP target, starting and stopping processes, CPU
//!   time, lost leases.
//! - [`summary`]: the short table for the README.

mod baseline;
mod catalogue;
mod end_to_end;
mod open_loop;
mod phases;
mod processes;
mod summary;
mod with_worker;

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::load::describe_machine;
use crate::progress::Progress;
use crate::results::Figures;

/// The section of every figure shown as a ratio to the baseline.
const RATIOS: &str = "ratio to the baseline (bare sqlx transactions/s of the same run)";

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
    /// Length of the baseline measurement, in seconds.
    pub baseline_secs: f64,
    /// Orders per second offered in the open-loop phase.
    pub open_loop_rate: f64,
    /// Length of the open-loop phase, in seconds.
    pub open_loop_secs: f64,
    /// A PostgreSQL server to measure beside SQLite (`--database`, `--postgres-url`).
    pub postgres_url: Option<String>,
    /// Print one JSON document instead of the tables.
    pub json: bool,
}

/// The command line of `load-bench`; `--help` lists it. `--quick` changes
/// the defaults of the flags not given.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "load-bench",
    about = "The whole system under HTTP load: the real kassa-api and kassa-worker binaries on a fresh \
             SQLite file (and with --database on a fresh PostgreSQL database), every figure beside a \
             bare-sqlx baseline of the same run."
)]
pub struct Cli {
    /// One small run, for a smoke test (flags given still win).
    #[arg(long)]
    quick: bool,
    /// Runs per figure; the median and the range are reported [default: 3, --quick 1].
    #[arg(long)]
    runs: Option<usize>,
    /// SQLite `synchronous` settings to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "normal,full", value_enum)]
    sync: Vec<kassa_common::db::Durability>,
    /// A PostgreSQL server to measure beside SQLite (a fresh database per run).
    #[arg(long, alias = "postgres-url", value_name = "postgres://user@host:port/db")]
    database: Option<String>,
    /// Concurrent closed-loop HTTP clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Customer accounts the clients order as [default: 64, --quick 8].
    #[arg(long)]
    users: Option<usize>,
    /// Length of the checkout-accept phase, in seconds [default: 3, --quick 2].
    #[arg(long)]
    accept_secs: Option<f64>,
    /// Orders per end-to-end phase [default: 2000, --quick 500].
    #[arg(long)]
    e2e_orders: Option<u64>,
    /// Worker process counts of the end-to-end phases.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    workers: Vec<usize>,
    /// Catalogue size of the search phase.
    #[arg(long, default_value_t = 10_000)]
    products: usize,
    /// Search requests of the search phase [default: 3000, --quick 500].
    #[arg(long)]
    search_requests: Option<u64>,
    /// Length of the order-reads phase, in seconds [default: 3, --quick 1].
    #[arg(long)]
    read_secs: Option<f64>,
    /// Length of the baseline measurement, in seconds [default: 2, --quick 1].
    #[arg(long)]
    baseline_secs: Option<f64>,
    /// Orders per second offered in the open-loop phase.
    #[arg(long, default_value_t = 500.0)]
    open_loop_rate: f64,
    /// Length of the open-loop phase, in seconds [default: 4, --quick 2].
    #[arg(long)]
    open_loop_secs: Option<f64>,
    /// Extra environment of the API, for experiments (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    api_env: Vec<(String, String)>,
    /// Extra environment of every worker, for experiments (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    worker_env: Vec<(String, String)>,
    /// Print one JSON document with every run's value instead of the tables.
    #[arg(long)]
    json: bool,
}

/// A `KEY=VALUE` argument.
fn key_value(value: &str) -> Result<(String, String), String> {
    let (key, setting) = value.split_once('=').ok_or_else(|| format!("{value:?} is not KEY=VALUE"))?;
    Ok((key.to_owned(), setting.to_owned()))
}

impl Cli {
    /// The settings these flags give.
    pub fn into_options(self) -> anyhow::Result<Options> {
        let quick = self.quick;
        let pick = |given: Option<f64>, normal: f64, small: f64| given.unwrap_or(if quick { small } else { normal });
        let options = Options {
            runs: self.runs.unwrap_or(if quick { 1 } else { 3 }),
            sync: self.sync.into_iter().map(crate::queue_bench::sync_name).collect(),
            clients: self.clients,
            users: self.users.unwrap_or(if quick { 8 } else { 64 }),
            accept_secs: pick(self.accept_secs, 3.0, 2.0),
            e2e_orders: self.e2e_orders.unwrap_or(if quick { 500 } else { 2_000 }),
            workers: self.workers,
            products: self.products,
            search_requests: self.search_requests.unwrap_or(if quick { 500 } else { 3_000 }),
            read_secs: pick(self.read_secs, 3.0, 1.0),
            api_env: self.api_env,
            worker_env: self.worker_env,
            baseline_secs: pick(self.baseline_secs, 2.0, 1.0),
            open_loop_rate: self.open_loop_rate,
            open_loop_secs: pick(self.open_loop_secs, 4.0, 2.0),
            postgres_url: self.database.as_deref().map(crate::queue_bench::postgres_url).transpose()?,
            json: self.json,
        };
        if options.runs == 0 || options.clients == 0 || options.users == 0 {
            bail!("--runs, --clients and --users must be at least 1");
        }
        if options.open_loop_rate <= 0.0 || options.open_loop_secs <= 0.0 {
            bail!("--open-loop-rate and --open-loop-secs must be positive");
        }
        Ok(options)
    }
}

/// Reads the command line (without the program name); `--help` is an
/// error carrying the help text.
pub fn parse_options(args: impl IntoIterator<Item = String>) -> anyhow::Result<Options> {
    let cli = <Cli as clap::Parser>::try_parse_from(std::iter::once("load-bench".to_owned()).chain(args))?;
    cli.into_options()
}

/// One column of the report: SQLite at one `synchronous` setting, or PostgreSQL.
#[derive(Clone, Debug)]
pub struct Setup {
    /// `normal` or `full` (SQLite), or `postgres`.
    pub name: &'static str,
    /// `KASSA_SQLITE_SYNCHRONOUS` of every process (PostgreSQL ignores it).
    pub sync: &'static str,
    /// The PostgreSQL server each run creates its database on.
    pub postgres_url: Option<String>,
}

impl Setup {
    /// How the report names it.
    pub fn title(&self) -> String {
        match self.postgres_url {
            Some(_) => "PostgreSQL".to_owned(),
            None => format!("SQLite, synchronous={}", self.sync),
        }
    }
}

impl Options {
    /// Phases in all (each run: baseline, setup, accept, drain, one per
    /// worker count, open loop, search, reads, `--with-worker`), for the
    /// progress display.
    pub fn steps(&self) -> u64 {
        (self.setups().len() * self.runs * (8 + self.workers.len())) as u64
    }

    /// SQLite at each `synchronous` setting, then PostgreSQL if given.
    pub fn setups(&self) -> Vec<Setup> {
        let mut setups: Vec<Setup> =
            self.sync.iter().map(|&sync| Setup { name: sync, sync, postgres_url: None }).collect();
        if let Some(url) = &self.postgres_url {
            setups.push(Setup { name: "postgres", sync: "normal", postgres_url: Some(url.clone()) });
        }
        setups
    }
}

/// The figures of one setup.
#[derive(Clone, Debug, Serialize)]
pub struct SetupResults {
    /// `normal` or `full` (SQLite's `synchronous`), or `postgres`.
    pub setup: &'static str,
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
    /// Orders per second offered in the open-loop phase.
    pub open_loop_rate: f64,
    /// The PostgreSQL server's version and durability settings, if measured.
    pub postgres: Option<String>,
    /// The figures, per setup.
    pub by_setup: Vec<SetupResults>,
    /// The README summary: a title, one cell per setting, a target.
    pub summary: Vec<summary::SummaryRow>,
    /// `/proc/loadavg` at the end.
    pub load_average_at_end: String,
}

/// Runs every phase `options.runs` times per setup,
/// reporting each finished phase to `progress`.
pub async fn run(options: &Options, progress: &Progress) -> anyhow::Result<LoadBenchResults> {
    // Build (or find) the binaries first, outside every measurement.
    let api = crate::binaries::binary("kassa-api");
    let _ = crate::binaries::binary("kassa-worker");
    let profile = api.parent().and_then(|dir| dir.file_name()).map(PathBuf::from).unwrap_or_default();
    let machine = describe_machine(&std::env::temp_dir());
    let postgres = match &options.postgres_url {
        Some(url) => Some(crate::queue_bench::postgres_settings(url).await?),
        None => None,
    };
    let mut by_setup = Vec::new();
    // Every run's data stays until the end (see `phases::run_once`).
    let scratch = tempfile::tempdir().context("Failed to create the benchmark's directory")?;
    for setup in options.setups() {
        let mut figures = Figures::default();
        for run in 1..=options.runs {
            progress.note(format_args!("{}: run {run} of {}", setup.title(), options.runs));
            let data_dir = scratch.path().join(format!("{}-run-{run}", setup.name));
            phases::run_once(options, &setup, &data_dir, &mut figures, progress)
                .await
                .with_context(|| format!("Failed run {run} on {}", setup.title()))?;
        }
        by_setup.push(SetupResults { setup: setup.name, figures });
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
        open_loop_rate: options.open_loop_rate,
        postgres,
        summary: summary::rows(options, &by_setup),
        by_setup,
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
        if let Some(postgres) = &self.postgres {
            println!("PostgreSQL: {postgres}");
        }
        for SetupResults { setup, figures } in &self.by_setup {
            println!();
            match *setup {
                "postgres" => println!("## PostgreSQL"),
                sync => println!("## SQLite, synchronous={sync}"),
            }
            for (section, table) in figures.tables() {
                println!();
                println!("### {section}");
                println!();
                if section == processes::LOST_LEASES {
                    print!("{}", figures.per_run_table(&section));
                } else {
                    print!("{table}");
                }
            }
        }
        println!();
        println!("## Summary (medians; paste into the README)");
        println!();
        print!("{}", summary::table(&self.by_setup, &self.summary));
        println!();
        println!("load average at the end: {}", self.load_average_at_end);
    }
}
