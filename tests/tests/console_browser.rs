//! The operator console in a real browser: headless Chromium driven over
//! WebDriver (chromedriver, started here on a free port) against the real
//! `kassa-api` and `kassa-worker`. An operator signs in, reads the
//! overview's counts of a known workload (and sees them refresh without
//! reloading), finds the dead charge, reads why it died, retries it, sees it
//! leave the dead list and follows its order to `confirmed` on the order's
//! timeline; a product named `<img src=x onerror=alert(1)>` shows as text.
//! Every page is saved as a PNG under `target/console-screenshots/`; with
//! `KASSA_UPDATE_DOCS_SCREENSHOTS=1` the overview and the order are also
//! copied to `docs/` for the README (not by default, so a test run leaves
//! the checkout as it was).
//!
//! Runs only with `KASSA_TEST_BROWSER=1` (`.ci/browser.sh` sets it and
//! installs Chromium), so `cargo test` needs nothing but the Rust
//! toolchain; with it set, a missing chromedriver or Chromium fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use kassa_common::queue::{DbJobStore, NewJob};
use kassa_tests::app::{TestApp, id};
use kassa_tests::console::dead_charge;
use kassa_tests::process::ChildProcess;
use kassa_worker::jobs::Probe;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
const XSS: &str = "<img src=x onerror=alert(1)>";

/// The program at `KASSA_TEST_<var>` or `default`, which must exist.
fn program(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(format!("KASSA_TEST_{var}")).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "KASSA_TEST_BROWSER=1 but {} does not exist: install Debian's chromium and chromium-driver \
         (`apt-get install -y chromium chromium-driver`, as .ci/browser.sh does) or set KASSA_TEST_{var}",
        path.display()
    );
    path
}

/// A chromedriver process on a free port, stopped on drop.
struct Chromedriver {
    url: String,
    _process: ChildProcess,
}

impl Chromedriver {
    async fn start() -> Chromedriver {
        let binary = program("CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut command = Command::new(&binary);
        command.arg(format!("--port={port}"));
        let process = ChildProcess::spawn("chromedriver", command);
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        loop {
            let ready = client.get(format!("{url}/status")).send().await;
            if let Ok(response) = ready {
                let status: serde_json::Value = response.json().await.unwrap_or_default();
                if status["value"]["ready"] == true {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "{} did not become ready on port {port}", binary.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Chromedriver { url, _process: process }
    }

    async fn browser(&self) -> Client {
        let chromium = program("CHROMIUM", "/usr/bin/chromium");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                // CI runs as root: Chromium's sandbox needs an unprivileged user.
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1100", "--hide-scrollbars"],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("chromedriver starts a Chromium session")
    }
}

/// Where screenshots go: `target/console-screenshots/`.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"), PathBuf::from);
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot directory can be made");
    dir
}

async fn screenshot(browser: &Client, name: &str) -> PathBuf {
    let png = browser.screenshot().await.expect("a screenshot");
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("the screenshot is saved");
    path
}

async fn text(browser: &Client, css: &str) -> String {
    match browser.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits, without reloading, until the element at `css` reads `expected`.
async fn wait_for_text(browser: &Client, css: &str, expected: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = text(browser, css).await;
        if found.trim() == expected {
            return;
        }
        assert!(Instant::now() < deadline, "{css} reads {found:?}, never {expected:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} is on the page: {e}"))
        .click()
        .await
        .expect("click");
}

async fn type_into(browser: &Client, css: &str, value: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} is on the page: {e}"))
        .send_keys(value)
        .await
        .expect("typing");
}

#[tokio::test]
async fn an_operator_finds_a_dead_charge_retries_it_and_follows_its_order_to_confirmed() {
    if std::env::var("KASSA_TEST_BROWSER").as_deref() != Ok("1") {
        eprintln!(
            "skipped: set KASSA_TEST_BROWSER=1 (and install chromium and chromium-driver) to run the browser test"
        );
        return;
    }
    let chromedriver = Chromedriver::start().await;

    // A known workload: one charge left dead (its order holds the XSS
    // product), two paid orders, one declined card.
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let xss = app.product(&admin, XSS, 2500, 10, "toys").await;
    let lamp = app.product(&admin, "Desk lamp", 4200, 10, "home").await;
    let dead = dead_charge(&app, &admin, "ana", id(&xss)).await;
    let (_, bob) = app.customer("bob").await;
    let mut settled = Vec::new();
    for method in ["pm_card_visa", "pm_card_visa", "pm_card_chargeDeclined"] {
        let body = json!({"items": [{"product_id": id(&lamp), "quantity": 1}], "payment_method": method});
        let order = app.post("/orders/", Some(&bob), &body).await.expect(202);
        settled.push((id(&order), if method == "pm_card_visa" { "confirmed" } else { "cancelled" }));
    }
    for (order_id, status) in &settled {
        app.wait_for_status(*order_id, status, &bob, WAIT).await;
    }

    let browser = chromedriver.browser().await;
    let base = &app.base_url;

    // Sign in.
    browser.goto(&format!("{base}/console/")).await.expect("the console opens");
    browser.wait().at_most(WAIT).for_element(Locator::Css("#signin-form")).await.expect("the sign-in form");
    screenshot(&browser, "sign-in").await;
    type_into(&browser, "#username", "root").await;
    type_into(&browser, "#password", kassa_tests::app::PASSWORD).await;
    click(&browser, "#signin").await;
    browser.wait().at_most(WAIT).for_element(Locator::Css("#queue-counts")).await.expect("the overview");

    // The overview shows the workload, and refreshes by itself.
    wait_for_text(&browser, "#count-charge-dead", "1").await;
    wait_for_text(&browser, "#count-all-dead", "1").await;
    wait_for_text(&browser, "#count-charge-pending", "0").await;
    assert!(text(&browser, "#workers").await.contains("ana-worker"), "the running worker is listed");
    let store = DbJobStore::new(app.db().await);
    store
        .push(&NewJob::new(&Probe { key: 1, fail_permanently: true, ..Probe::default() }).expect("probe"))
        .await
        .expect("push");
    wait_for_text(&browser, "#count-probe-dead", "1").await;
    wait_for_text(&browser, "#count-all-dead", "2").await;
    let overview = screenshot(&browser, "overview").await;

    // Find the dead charge and read why it died.
    click(&browser, "#count-charge-dead a").await;
    let link = format!("#job-link-{}", dead.job_id);
    browser.wait().at_most(WAIT).for_element(Locator::Css(&link)).await.expect("the dead charge is listed");
    screenshot(&browser, "dead-jobs").await;
    click(&browser, &link).await;
    browser.wait().at_most(WAIT).for_element(Locator::Css("#retry")).await.expect("a retry button");
    let error = text(&browser, "#last-error").await;
    assert!(error.contains("gave up after 1 attempts") && error.contains("expired"), "why it died: {error}");
    screenshot(&browser, "dead-job").await;

    // Retry it; it leaves the dead list and its order is confirmed.
    type_into(&browser, "#retry-reason", "worker crashed; gateway is back").await;
    click(&browser, "#retry").await;
    browser.wait().at_most(WAIT).for_element(Locator::Css("#notice")).await.expect("the retry is confirmed");
    screenshot(&browser, "retried-job").await;
    browser.goto(&format!("{base}/console/jobs?state=dead&type=charge")).await.expect("the dead list");
    browser.wait().at_most(WAIT).for_element(Locator::Css("#no-jobs")).await.expect("no dead charge is left");
    assert!(browser.find(Locator::Css(&link)).await.is_err(), "the retried charge left the dead list");
    browser.goto(&format!("{base}/console/jobs/{}", dead.job_id)).await.expect("the job again");
    click(&browser, "#job-order").await;
    let deadline = Instant::now() + WAIT;
    while text(&browser, "#order-status").await != "confirmed" {
        assert!(Instant::now() < deadline, "order {} never showed confirmed", dead.order_id);
        tokio::time::sleep(Duration::from_millis(200)).await;
        browser.refresh().await.expect("reload");
    }
    let timeline = text(&browser, "#timeline").await;
    assert!(timeline.contains("confirmed") && timeline.contains("charge"), "the timeline tells the story: {timeline}");

    // The stored-XSS product name is text: no image element, no alert.
    let name = text(&browser, "#items td.product-name").await;
    assert!(name.contains(XSS), "the name is shown as written: {name}");
    let images = browser
        .execute("return document.querySelectorAll('#items img, body img[src=x]').length;", vec![])
        .await
        .expect("a script runs");
    assert_eq!(images, json!(0), "no element was made from the product name");
    assert!(browser.get_alert_text().await.is_err(), "no alert was raised");
    let order = screenshot(&browser, "order").await;

    // Searching by the customer's e-mail finds the order.
    browser.goto(&format!("{base}/console/orders")).await.expect("orders");
    type_into(&browser, "#order-search", "ana@example.com").await;
    click(&browser, "#search").await;
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(&format!("#order-link-{}", dead.order_id)))
        .await
        .expect("the search finds ana's order");
    screenshot(&browser, "orders").await;
    browser.close().await.expect("the browser closes");

    if std::env::var_os("KASSA_UPDATE_DOCS_SCREENSHOTS").is_some_and(|value| value == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        std::fs::copy(&overview, docs.join("console-overview.png")).expect("the overview is copied to docs/");
        std::fs::copy(&order, docs.join("console-order.png")).expect("the order is copied to docs/");
    }
    app.get(&format!("/orders/{}", dead.order_id), Some(&dead.customer_token)).await.expect(200);
}
