//! The chaos harness, short: a few hundred orders through three workers that
//! are SIGKILLed about once a second (every fifth kill takes the API down
//! and restarts it), and every invariant must hold. The full-size run is
//! `cargo run --release -p tests --bin chaos` (docs/chaos.md).

use std::time::Duration;

use kassa_tests::chaos::{self, ChaosConfig};
use kassa_tests::progress::ProgressMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_chaos_run_under_sigkill_breaks_no_invariant() {
    let config = ChaosConfig {
        orders: 300,
        workers: 3,
        users: 20,
        kill_every: Duration::from_secs(1),
        kill_api: true,
        min_worker_kills: 5,
        timeout: Duration::from_secs(100),
        progress_every: Duration::from_secs(5),
        progress: ProgressMode::Lines,
        ..ChaosConfig::default()
    };
    let report = chaos::run(&config).await.expect("the harness runs");
    println!("{report}");
    let json = report.to_json();
    assert_eq!(json["passed"], report.passed(), "the JSON report says what the table says");
    assert_eq!(json["checks"].as_array().map(Vec::len), Some(report.checks.len()));
    assert!(report.activity.worker_kills >= 5, "the workers were killed: {report}");
    assert!(report.activity.api_restarts >= 1, "the API was killed too: {report}");
    assert!(report.activity.accepted >= 200, "most orders were accepted: {report}");
    assert!(report.passed(), "invariants violated:\n{report}");
}
