//! `queue-bench`: throughput and latency of Kassa's job queue on this
//! machine. What it measures is described in `kassa_tests::queue_bench`.
//!
//! ```text
//! cargo run --release -p tests --bin queue-bench -- [--runs 3] [--sync normal,full]
//!     [--database postgres://user@host:port/db] [--drain-jobs 20000] [--processes 1,2,4]
//!     [--concurrency 64] [--finished-rows 1000000] [--latency-jobs 200] [--enqueue-jobs 3000] [--json]
//! ```
//!
//! With `--database` (or `--postgres-url`) every measurement also runs on a
//! fresh database created on that PostgreSQL server and dropped afterwards.
//!
//! `--help` lists every flag with its default.
//!
//! Progress goes to standard error (a bar on a terminal, a line every few
//! seconds otherwise); the tables come at the end on standard output, or
//! with `--json` one JSON document with every run's value instead.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kassa_tests::progress::{Progress, ProgressMode, ProgressSpec};
use kassa_tests::queue_bench::{self, Cli};

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let options = Cli::parse().into_options()?;
    let progress = Progress::start(
        ProgressMode::Auto,
        ProgressSpec {
            label: "queue-bench".to_owned(),
            unit: "measurement runs",
            total: options.steps(),
            line_every: Duration::from_secs(5),
        },
    );
    let results = queue_bench::run(&options, &progress).await?;
    progress.finish();
    if options.json {
        println!("{}", serde_json::to_string_pretty(&results).context("Failed to render the results")?);
    } else {
        results.print_tables();
    }
    Ok(())
}
