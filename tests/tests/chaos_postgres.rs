//! The chaos harness on PostgreSQL, across hosts (issue 14), CI-sized: two
//! API processes and three workers, each in a network namespace of its own
//! (on 127.0.0.x addresses where namespaces are not permitted), on one fresh
//! PostgreSQL database; workers and APIs are SIGKILLed and every database
//! session is terminated now and then during a few hundred orders, and every
//! invariant must hold. Needs `KASSA_TEST_POSTGRES_URL`; skipped without it.
//! The full-size run is the `chaos` command with `--database` (docs/chaos.md).

use std::time::Duration;

use kassa_tests::chaos::hosts::netns_permitted;
use kassa_tests::chaos::{self, ChaosConfig, HostMode};
use kassa_tests::progress::ProgressMode;
use sqlx::Connection;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_multi_host_chaos_run_on_postgres_with_database_cuts_breaks_no_invariant() {
    let Some(server) = kassa_common::db::scratch::postgres_server_url() else {
        println!("skipped: KASSA_TEST_POSTGRES_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres)");
        return;
    };
    let hosts = if netns_permitted() {
        HostMode::Netns
    } else {
        println!("network namespaces are not permitted here: each process gets a 127.0.0.x address instead");
        HostMode::Loopback
    };
    let config = ChaosConfig {
        orders: 300,
        apis: 2,
        workers: 3,
        users: 20,
        hosts,
        database: Some(server.clone()),
        cut_db_every: Some(Duration::from_secs(2)),
        kill_every: Duration::from_secs(1),
        kill_api: true,
        min_worker_kills: 5,
        timeout: Duration::from_secs(150),
        progress_every: Duration::from_secs(5),
        progress: ProgressMode::Lines,
        ..ChaosConfig::default()
    };
    let report = chaos::run(&config).await.expect("the harness runs");
    println!("{report}");
    let activity = &report.activity;
    assert!(activity.worker_kills >= 5, "the workers were killed: {report}");
    assert!(activity.api_restarts >= 1, "an API was killed too: {report}");
    assert!(activity.db_cuts >= 2 && activity.sessions_cut > 0, "the database sessions were cut: {report}");
    assert!(activity.accepted >= 200, "most orders were accepted: {report}");
    assert_eq!(activity.answers_500, 0, "no answer was a 500: {report}");
    assert_eq!(report.placements.len(), 5, "two APIs and three workers: {report}");
    let addresses: std::collections::HashSet<&str> =
        report.placements.iter().filter_map(|line| line.split(" on ").nth(1)?.split_whitespace().nth(1)).collect();
    assert_eq!(addresses.len(), 5, "each process on an address of its own: {:?}", report.placements);
    assert!(report.passed(), "invariants violated:\n{report}");

    let name = report.database_name.clone().expect("the run made a PostgreSQL database");
    let mut admin = sqlx::postgres::PgConnection::connect(&server).await.expect("the server answers");
    let left: i64 = sqlx::query_scalar("select count(*) from pg_database where datname = $1")
        .bind(&name)
        .fetch_one(&mut admin)
        .await
        .expect("pg_database");
    assert_eq!(left, 0, "the run's database {name} is dropped afterwards");
}
