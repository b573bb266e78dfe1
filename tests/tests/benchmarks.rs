//! The benchmark commands report what docs/benchmarks.md shows: one tiny
//! run of `load-bench` and of `queue-bench` on each backend, checking that
//! every figure the issues ask for is there (not how fast it is — timing
//! belongs in the benchmark, not in tests).

use std::time::Duration;

use kassa_common::db::Backend;
use kassa_common::db::scratch::postgres_server_url;
use kassa_tests::progress::{Progress, ProgressMode, ProgressSpec};
use kassa_tests::{backend, load_bench, queue_bench};

fn progress(label: &str, total: u64) -> Progress {
    Progress::start(
        ProgressMode::Lines,
        ProgressSpec { label: label.to_owned(), unit: "steps", total, line_every: Duration::from_secs(5) },
    )
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|arg| (*arg).to_owned()).collect()
}

kassa_tests::black_box! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn load_bench_reports_baseline_ratios_open_loop_lost_leases_and_with_worker() {
        let mut options = load_bench::parse_options(args(&[
            "--runs", "1", "--sync", "normal", "--clients", "4", "--users", "2", "--accept-secs", "0.5",
            "--e2e-orders", "40", "--workers", "1,2", "--products", "50", "--search-requests", "30",
            "--read-secs", "0.3", "--baseline-secs", "0.3", "--open-loop-rate", "40", "--open-loop-secs", "1",
        ]))
        .expect("the options parse");
        if backend::current() == Backend::Postgres {
            options.sync.clear();
            options.postgres_url = postgres_server_url();
        }
        let results = load_bench::run(&options, &progress("load-bench", options.steps())).await.expect("load-bench runs");
        assert_eq!(results.by_setup.len(), 1);
        let figures = &results.by_setup[0].figures;
        let value = |name: &str| figures.median_of(name).unwrap_or_else(|| panic!("no figure {name:?}"));
        assert!(value("transactions/s, one order row + one job row each") > 0.0, "the baseline ran");
        for ratio in ["checkout accept / baseline", "backlog drain / baseline", "end to end, 1 worker / baseline",
                      "end to end, 2 workers / baseline", "end to end, --with-worker / baseline"] {
            assert!(value(ratio) > 0.0, "{ratio}");
        }
        assert!(value("offered rate achieved (requests sent)") > 20.0, "the open loop kept its schedule");
        assert!(value("accepted → confirmed p50") > 0.0, "open-loop latency from the database");
        assert!(value("accepted → confirmed, --with-worker") > 0.0);
        assert!(figures.median_of("orders confirmed when the load stopped").is_some());
        let lost: Vec<&str> = figures
            .0
            .iter()
            .filter(|figure| figure.section.starts_with("lost leases"))
            .map(|figure| figure.name.as_str())
            .collect();
        assert_eq!(
            lost,
            ["backlog drain, 1 worker", "end to end, 1 worker", "end to end, 2 workers", "open loop, 1 worker",
             "kassa-api --with-worker"],
            "every phase with a worker counts its lost leases"
        );
        let summary: Vec<&str> = results.summary.iter().map(|row| row.title.as_str()).collect();
        assert!(summary.iter().any(|title| title.starts_with("baseline")), "{summary:?}");
        assert!(summary.iter().any(|title| title.starts_with("lost leases")), "{summary:?}");
    }
}

kassa_tests::black_box! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queue_bench_reports_the_drain_on_each_backend() {
        let mut options = queue_bench::parse_options(args(&[
            "--runs", "1", "--sync", "normal", "--drain-jobs", "200", "--processes", "1", "--finished-rows", "500",
            "--latency-jobs", "5", "--enqueue-jobs", "50",
        ]))
        .expect("the options parse");
        if backend::current() == Backend::Postgres {
            options.sync.clear();
            options.postgres_url = postgres_server_url();
        }
        let results =
            queue_bench::run(&options, &progress("queue-bench", options.steps())).await.expect("queue-bench runs");
        assert_eq!(results.by_setup.len(), 1);
        let figures = &results.by_setup[0].figures;
        for name in ["drain, 1 worker process(es)", "drain, 1 process, 500 finished rows present",
                     "enqueue inside a business transaction", "enqueue→start p50, across processes"] {
            assert!(figures.median_of(name).is_some_and(|value| value > 0.0), "{name}");
        }
        assert_eq!(results.postgres.is_some(), backend::current() == Backend::Postgres);
    }
}

#[test]
fn the_benchmarks_take_a_postgres_server_and_an_open_loop_rate() {
    let options = load_bench::parse_options(args(&[
        "--database",
        "postgres://postgres@127.0.0.1:5432/postgres",
        "--open-loop-rate",
        "250",
    ]))
    .expect("the options parse");
    let setups: Vec<&str> = options.setups().iter().map(|setup| setup.name).collect();
    assert_eq!(setups, ["normal", "full", "postgres"]);
    assert_eq!(options.open_loop_rate, 250.0);
    assert!(load_bench::parse_options(args(&["--database", "sqlite:///tmp/x.db"])).is_err());
    let options = queue_bench::parse_options(args(&["--postgres-url", "postgresql://u@h/db"])).expect("parses");
    let setups: Vec<&str> = options.setups().iter().map(|setup| setup.name).collect();
    assert_eq!(setups, ["normal", "full", "postgres"]);
}

#[test]
fn the_benchmark_commands_list_their_flags_on_help() {
    let help = load_bench::parse_options(args(&["--help"])).expect_err("--help prints the help").to_string();
    for flag in [
        "--quick",
        "--runs",
        "--sync",
        "--database",
        "--clients",
        "--e2e-orders",
        "--workers",
        "--open-loop-rate",
        "--api-env",
        "--worker-env",
        "--json",
    ] {
        assert!(help.contains(flag), "load-bench --help lists {flag}:\n{help}");
    }
    let help = queue_bench::parse_options(args(&["--help"])).expect_err("--help prints the help").to_string();
    for flag in ["--runs", "--sync", "--database", "--drain-jobs", "--processes", "--finished-rows", "--json"] {
        assert!(help.contains(flag), "queue-bench --help lists {flag}:\n{help}");
    }
    assert!(load_bench::parse_options(args(&["--bogus"])).is_err(), "an unknown flag is refused");
    assert!(queue_bench::parse_options(args(&["--sync", "sometimes"])).is_err(), "an unknown mode is refused");

    let quick = load_bench::parse_options(args(&["--runs", "2", "--quick", "--worker-env", "A=b=c"])).expect("parses");
    assert_eq!((quick.runs, quick.e2e_orders, quick.users), (2, 500, 8), "--quick sets what is not given");
    assert_eq!(quick.worker_env, [("A".to_owned(), "b=c".to_owned())]);
    let full = load_bench::parse_options(args(&[])).expect("parses");
    assert_eq!(
        (full.runs, full.e2e_orders, full.workers.as_slice(), full.sync.as_slice()),
        (3, 2_000, &[1, 2, 4][..], &["normal", "full"][..])
    );
}
