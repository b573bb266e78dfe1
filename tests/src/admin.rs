//! The operators' side of a test: the stock audit every settled test
//! asserts, and scraping the Prometheus endpoints of the API and a worker.

use std::time::Duration;

use serde_json::{Value, json};

use crate::app::TestApp;
use crate::process::ChildProcess;

/// The admin account the helpers use to read the stock audit.
const AUDITOR: &str = "stock-auditor";

/// A token for the auditing admin, registering it on first use.
pub async fn auditor_token(app: &TestApp) -> String {
    app.admin_account(AUDITOR, true).await.1
}

/// Asserts that `GET /admin/stock-audit` reports no product breaking stock
/// conservation, and returns the audit.
pub async fn assert_stock_audit_clean(app: &TestApp) -> Value {
    let token = auditor_token(app).await;
    let audit = app.get("/admin/stock-audit", Some(&token)).await.expect(200);
    assert_eq!(audit["violations"], json!([]), "the stock audit found violations: {audit:#}");
    assert_eq!(audit["ok"], true, "{audit:#}");
    audit
}

/// The API's `/metrics` text, with the metrics token when one is set.
pub async fn scrape_api(app: &TestApp, metrics_token: Option<&str>) -> String {
    let mut request = app.client.get(format!("{}/metrics", app.base_url));
    if let Some(token) = metrics_token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("metrics request sent");
    assert_eq!(response.status(), 200, "GET /metrics");
    response.text().await.expect("metrics body")
}

/// The `/metrics` URL of a worker started with `KASSA_WORKER_METRICS_BIND=127.0.0.1:0`.
pub fn worker_metrics_url(worker: &mut ChildProcess) -> String {
    let rest = worker.wait_for_line("metrics listening on ", Duration::from_secs(30));
    let addr = rest.split_whitespace().next().expect("an address follows 'metrics listening on'");
    format!("http://{addr}/metrics")
}

/// A worker's `/metrics` text.
pub async fn scrape_worker(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.expect("worker metrics request sent");
    assert_eq!(response.status(), 200, "GET {url}");
    response.text().await.expect("worker metrics body")
}
