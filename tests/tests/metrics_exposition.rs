//! Both `/metrics` endpoints after a real workload: read by two independent
//! parsers of the Prometheus text format (ours, strict line by line, and the
//! `openmetrics-parser` crate) that must agree, clean by the lint rules
//! `promtool check metrics` applies (`kassa_tests::prometheus::lint`), with
//! the key series at the values the workload implies; and the operator
//! material in `docs/operations/` refers only to metrics a real scrape
//! contains. Nothing outside the Rust toolchain is needed: `.ci/run` runs
//! `promtool` itself on the scrapes this test saves (`KASSA_METRICS_SCRAPE_DIR`)
//! and on the scrape configuration, as extra checks.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use kassa_tests::admin::{scrape_api, scrape_worker, worker_metrics_url};
use kassa_tests::app::{AppOptions, PASSWORD, TestApp};
use kassa_tests::process::ChildProcess;
use kassa_tests::prometheus::{self, Exposition, lint};
use serde_json::{Value, json};
use yaml_rust2::YamlLoader;

const SETTLE: Duration = Duration::from_secs(30);
const METRICS_TOKEN: &str = "scrape-token-for-tests";

/// A settled shop after a small workload, and the worker's metrics URL.
struct Workload {
    app: TestApp,
    _worker: ChildProcess,
    worker_url: String,
}

/// Two checkouts (one paid, one declined), a failed login and requests
/// refused by the auth rate limit, all settled.
async fn run_workload() -> Workload {
    // Six /auth calls fit in the burst (the audit helper's two included); the next are refused.
    let options = AppOptions::default()
        .env("KASSA_METRICS_TOKEN", METRICS_TOKEN)
        .env("KASSA_AUTH_RATE_PER_MIN", "1")
        .env("KASSA_AUTH_BURST", "7");
    let app = TestApp::spawn_with(options).await;
    let mut worker = app.spawn_worker("w1", &[("KASSA_WORKER_METRICS_BIND", "127.0.0.1:0")]);
    let worker_url = worker_metrics_url(&mut worker);
    let (_, admin) = app.admin("root").await;
    let (_, ana) = app.customer("ana").await;
    let wrong = app.post("/auth/login", None, &json!({"username": "ana", "password": format!("{PASSWORD}!")})).await;
    wrong.expect_problem(401);
    let lamp = app.product(&admin, "Desk lamp", 2500, 10, "home").await;
    let lamp_id = lamp["id"].as_i64().expect("id");
    let mut orders = Vec::new();
    for payment_method in ["pm_card_visa", "pm_card_chargeDeclined"] {
        let body = json!({"items": [{"product_id": lamp_id, "quantity": 1}], "payment_method": payment_method});
        orders.push(app.post("/orders/", Some(&ana), &body).await.expect(202)["id"].as_i64().expect("id"));
    }
    app.wait_for_status(orders[0], "confirmed", &ana, SETTLE).await;
    app.wait_for_status(orders[1], "cancelled", &ana, SETTLE).await;
    app.assert_settled(SETTLE).await;
    let mut refused = 0;
    while refused == 0 {
        let reply = app.post("/auth/login", None, &json!({"username": "ana", "password": PASSWORD})).await;
        if reply.status == 429 {
            refused += 1;
        }
    }
    Workload { app, _worker: worker, worker_url }
}

/// Checks `text` as a scraper and a linter would; panics with every
/// finding. With `KASSA_METRICS_SCRAPE_DIR` set, also saves it there as
/// `<what>.prom` for `.ci/run` to lint with promtool.
fn check_exposition(what: &str, text: &str) -> Exposition {
    let exposition = prometheus::parse(text).unwrap_or_else(|e| panic!("the {what} exposition: {e}\n{text}"));
    if let Err(disagreement) = lint::cross_check(text, &exposition) {
        panic!("the {what} exposition: {disagreement}\n--- scrape ---\n{text}");
    }
    let problems = lint::lint(&exposition);
    assert!(
        problems.is_empty(),
        "the {what} exposition fails the lint:\n{}\n--- scrape ---\n{text}",
        problems.join("\n")
    );
    let histograms = exposition.types.values().filter(|kind| *kind == "histogram").count();
    assert!(histograms >= 1, "the {what} exposition has histograms to check");
    if let Some(dir) = std::env::var_os("KASSA_METRICS_SCRAPE_DIR") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("the scrape directory can be created");
        std::fs::write(dir.join(format!("{}.prom", what.to_lowercase())), text).expect("the scrape is saved");
    }
    exposition
}

/// Polls the worker until its database sampler has run since the work settled.
async fn settled_worker_scrape(workload: &Workload) -> (String, Exposition) {
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let text = scrape_worker(&workload.app.client, &workload.worker_url).await;
        let scrape = prometheus::parse(&text).expect("valid worker exposition");
        let sampled = scrape.has("kassa_queue_oldest_pending_age_seconds")
            && scrape.sum("kassa_queue_depth", &[("state", "pending")]) == 0.0
            && scrape.sum("kassa_queue_depth", &[("state", "running")]) == 0.0;
        if sampled {
            return (text, scrape);
        }
        assert!(std::time::Instant::now() < deadline, "the worker never sampled a drained queue:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

kassa_tests::black_box! {
#[tokio::test]
async fn both_metrics_endpoints_are_lint_clean_and_count_the_workload() {
    let workload = run_workload().await;
    let app = &workload.app;
    app.get("/metrics", None).await.expect_problem(401);
    let api_text = scrape_api(app, Some(METRICS_TOKEN)).await;
    let api = check_exposition("API", &api_text);
    assert_eq!(api.sum("kassa_checkouts_accepted_total", &[]), 2.0, "{api_text}");
    assert_eq!(api.sum("kassa_login_failures_total", &[]), 1.0);
    assert!(api.sum("kassa_rate_limited_requests_total", &[("scope", "auth")]) >= 1.0);
    assert_eq!(api.sum("kassa_orders", &[("status", "confirmed")]), 1.0);
    assert_eq!(api.sum("kassa_orders", &[("status", "cancelled")]), 1.0);
    assert_eq!(api.sum("kassa_orders", &[("status", "pending")]), 0.0);
    assert_eq!(api.sum("kassa_orders_cancelled", &[("reason", "payment_declined")]), 1.0);
    assert!(api.has("kassa_orders_cancelled"), "every known reason is present, at 0 when unused");
    assert_eq!(api.sum("kassa_orders_cancelled", &[("reason", "out_of_stock")]), 0.0);
    assert_eq!(api.sum("kassa_stock_audit_violations", &[]), 0.0);
    let accepted = [("method", "POST"), ("route", "/orders/"), ("status", "202")];
    assert_eq!(api.sum("kassa_http_requests_total", &accepted), 2.0);
    assert_eq!(api.types["kassa_http_request_duration_seconds"], "histogram");

    let (worker_text, _) = settled_worker_scrape(&workload).await;
    let worker = check_exposition("worker", &worker_text);
    for job_type in ["reserve_stock", "charge"] {
        let labels = [("job_type", job_type)];
        assert_eq!(worker.sum("kassa_jobs_started_total", &labels), 2.0, "{job_type}: {worker_text}");
        assert_eq!(worker.sum("kassa_jobs_succeeded_total", &labels), 2.0, "{job_type}");
        assert_eq!(worker.sum("kassa_jobs_retried_total", &labels), 0.0, "{job_type}");
        assert_eq!(worker.sum("kassa_jobs_dead_total", &labels), 0.0, "{job_type}");
        assert_eq!(worker.sum("kassa_job_duration_seconds_count", &labels), 2.0, "{job_type}");
        assert_eq!(worker.sum("kassa_queue_oldest_pending_age_seconds", &labels), 0.0, "{job_type}");
        assert_eq!(worker.sum("kassa_queue_retrying", &labels), 0.0, "{job_type}");
    }
    assert_eq!(worker.sum("kassa_queue_depth", &[("state", "dead")]), 0.0);
    assert_eq!(worker.sum("kassa_orders_cancelled_total", &[("reason", "payment_declined")]), 1.0);
    assert_eq!(worker.sum("kassa_payments_total", &[("outcome", "captured")]), 1.0);
    assert_eq!(worker.sum("kassa_lease_rescues_total", &[]), 0.0);
    assert!(worker.has("kassa_sqlite_busy_retries_total"));
    assert!(worker.sum("kassa_job_claim_batch_size_count", &[]) >= 1.0);
    assert_eq!(worker.sum("kassa_stock_audit_violations", &[]), 0.0);
}
}

fn docs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/operations")
}

/// Every `kassa_…` name in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("kassa_") {
        let tail = &rest[start..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

fn exprs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("expr", Value::String(expr)) => found.push(expr.clone()),
                    _ => exprs(inner, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| exprs(item, found)),
        _ => {}
    }
}

kassa_tests::black_box! {
#[tokio::test]
async fn the_grafana_dashboard_and_scrape_config_refer_only_to_metrics_a_real_scrape_has() {
    let text = std::fs::read_to_string(docs_dir().join("grafana-dashboard.json")).expect("dashboard file");
    let dashboard: Value = serde_json::from_str(&text).expect("the Grafana dashboard is valid JSON");
    assert!(dashboard["title"].is_string() && dashboard["panels"].as_array().is_some_and(|p| p.len() >= 7));
    let mut found = Vec::new();
    exprs(&dashboard, &mut found);
    let referenced: BTreeSet<String> = found.iter().flat_map(|expr| metric_names(expr)).collect();
    for needed in [
        "kassa_queue_depth",
        "kassa_queue_oldest_pending_age_seconds",
        "kassa_jobs_started_total",
        "kassa_jobs_dead_total",
        "kassa_checkouts_accepted_total",
        "kassa_orders_cancelled",
        "kassa_http_request_duration_seconds_bucket",
    ] {
        assert!(referenced.contains(needed), "the dashboard has no panel on {needed}");
    }

    let workload = run_workload().await;
    let api = prometheus::parse(&scrape_api(&workload.app, Some(METRICS_TOKEN)).await).expect("API exposition");
    let (_, worker) = settled_worker_scrape(&workload).await;
    let scraped: BTreeSet<&str> =
        api.samples.iter().chain(worker.samples.iter()).map(|sample| sample.name.as_str()).collect();
    let missing: Vec<&String> = referenced.iter().filter(|name| !scraped.contains(name.as_str())).collect();
    assert!(missing.is_empty(), "the dashboard refers to metrics no endpoint serves: {missing:?}");

    let config = std::fs::read_to_string(docs_dir().join("prometheus.yml")).expect("scrape config");
    assert_scrape_config_is_well_formed(&config);
    assert!(config.contains("job_name: kassa-api") && config.contains("job_name: kassa-worker"));
    assert!(config.contains("credentials_file"), "the API job sends the metrics token");
}
}

/// A Prometheus duration such as `15s` or `1m30s`.
fn is_duration(text: &str) -> bool {
    let mut rest = text;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = ["ms", "s", "m", "h", "d", "w", "y"].into_iter().find(|unit| rest[digits..].starts_with(unit));
        let Some(unit) = unit.filter(|_| digits > 0) else { return false };
        rest = &rest[digits + unit.len()..];
        parts += 1;
    }
    parts > 0
}

/// What `promtool check config --syntax-only` checks of the parts we use
/// (`.ci/run` runs promtool itself too): valid YAML; durations; every
/// scrape job named once, with a path and `host:port` targets; the API job's
/// bearer token read from a file.
fn assert_scrape_config_is_well_formed(text: &str) {
    let documents = YamlLoader::load_from_str(text).unwrap_or_else(|e| panic!("prometheus.yml is not valid YAML: {e}"));
    let [config] = documents.as_slice() else { panic!("prometheus.yml holds one YAML document") };
    for key in ["scrape_interval", "evaluation_interval"] {
        let value = config["global"][key].as_str().unwrap_or_else(|| panic!("global.{key} is set"));
        assert!(is_duration(value), "global.{key} is a duration, not {value:?}");
    }
    let jobs = config["scrape_configs"].as_vec().expect("scrape_configs is a list");
    let mut names = BTreeSet::new();
    for job in jobs {
        let name = job["job_name"].as_str().expect("every scrape job has a job_name");
        assert!(names.insert(name), "job_name {name} appears twice");
        assert!(job["metrics_path"].as_str().is_some_and(|path| path.starts_with('/')), "{name}: metrics_path");
        let static_configs = job["static_configs"].as_vec().unwrap_or_else(|| panic!("{name}: static_configs"));
        for targets in static_configs.iter().map(|group| &group["targets"]) {
            let targets = targets.as_vec().unwrap_or_else(|| panic!("{name}: targets is a list"));
            assert!(!targets.is_empty(), "{name}: at least one target");
            for target in targets {
                let target = target.as_str().unwrap_or_else(|| panic!("{name}: a target is a string"));
                let port = target.rsplit_once(':').and_then(|(_, port)| port.parse::<u16>().ok());
                assert!(port.is_some(), "{name}: target {target:?} is host:port");
            }
        }
    }
    assert_eq!(names, BTreeSet::from(["kassa-api", "kassa-worker"]));
    let api = jobs.iter().find(|job| job["job_name"].as_str() == Some("kassa-api")).expect("the kassa-api job");
    let authorization = &api["authorization"];
    assert_eq!(authorization["type"].as_str(), Some("Bearer"), "the API job sends a bearer token");
    assert!(authorization["credentials_file"].as_str().is_some_and(|path| path.starts_with('/')));
}
