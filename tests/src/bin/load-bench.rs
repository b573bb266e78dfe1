//! `load-bench`: the whole system under HTTP load on this machine — the real
//! `kassa-api` and `kassa-worker` binaries on a fresh temporary SQLite file,
//! and with `--database postgres://…` also on a fresh database on that
//! server. What it measures is described in `kassa_tests::load_bench`.
//!
//! ```text
//! cargo build --release -p kassa-api -p kassa-worker
//! cargo build --release -p tests --bin load-bench
//! target/release/load-bench [--quick] [--runs 3]
//!     [--sync normal,full] [--database postgres://user@host:port/db] [--clients 64] [--users 64]
//!     [--accept-secs 3] [--e2e-orders 2000] [--workers 1,2,4] [--products 10000]
//!     [--search-requests 3000] [--read-secs 3] [--baseline-secs 2]
//!     [--open-loop-rate 500] [--open-loop-secs 4]
//!     [--api-env KEY=VALUE]... [--worker-env KEY=VALUE]... [--json]
//! ```
//!
//! `--postgres-url` is another name for `--database`; SQLite is always measured.
//!
//! `--help` lists every flag with its default.
//!
//! Progress goes to standard error (a bar on a terminal, a line every few
//! seconds otherwise); the tables come at the end on standard output, or
//! with `--json` one JSON document with every run's value instead.
//! `--quick` is one small run, for a smoke test.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kassa_tests::load_bench::{self, Cli};
use kassa_tests::progress::{Progress, ProgressMode, ProgressSpec};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let options = Cli::parse().into_options()?;
    let progress = Progress::start(
        ProgressMode::Auto,
        ProgressSpec {
            label: "load-bench".to_owned(),
            unit: "phases",
            total: options.steps(),
            line_every: Duration::from_secs(5),
        },
    );
    let results = load_bench::run(&options, &progress).await?;
    progress.finish();
    if options.json {
        println!("{}", serde_json::to_string_pretty(&results).context("Failed to render the results")?);
    } else {
        results.print_tables();
    }
    Ok(())
}
