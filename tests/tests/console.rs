//! The operator console over HTTP against the real binary: who may see
//! what (anonymous visitors and customers never get data, an expired or
//! revoked session is no session), CSRF tokens on every form (a missing or
//! wrong one is 403 and changes nothing), cookie attributes, escaping of
//! user text, the hardening headers, `KASSA_CONSOLE=off`, and retry,
//! discard and cancel recorded exactly as the API records them.

use std::time::Duration;

use kassa_common::queue::{DbJobStore, Enqueued, NewJob};
use kassa_tests::app::{AppOptions, PASSWORD, TestApp, id};
use kassa_tests::console::{Console, Page};
use kassa_worker::jobs::Probe;
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const XSS: &str = "<img src=x onerror=alert(1)>";

/// Pushes a probe job that fails for good on its first attempt.
async fn push_failing_probe(app: &TestApp, key: i64) -> i64 {
    let store = DbJobStore::new(app.db().await);
    let job = NewJob::new(&Probe { key, fail_permanently: true, ..Probe::default() }).expect("probe encodes");
    match store.push(&job).await.expect("job pushed") {
        Enqueued::Created(id) | Enqueued::Duplicate(id) => id.0,
    }
}

/// Polls `GET /admin/jobs/{id}` until the job is in `state`.
async fn wait_for_job_state(app: &TestApp, token: &str, job_id: i64, state: &str) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let job = app.get(&format!("/admin/jobs/{job_id}"), Some(token)).await.expect(200);
        if job["state"] == state {
            return job;
        }
        assert!(std::time::Instant::now() < deadline, "job {job_id} never reached {state}: {job:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An app with a dead probe job and a pending order (no worker runs the
/// order's jobs: the worker only takes probes), made by admin `root`.
struct World {
    app: TestApp,
    admin_id: i64,
    admin_token: String,
    dead_job: i64,
    order_id: i64,
    _worker: kassa_tests::process::ChildProcess,
}

async fn world(options: AppOptions) -> World {
    let app = TestApp::spawn_with(options).await;
    let worker = app.spawn_worker("w1", &[("KASSA_JOB_TYPES", "probe")]);
    let (admin_id, admin_token) = app.admin("root").await;
    let product = app.product(&admin_token, XSS, 1500, 10, "toys").await;
    let (_, ana) = app.customer("ana").await;
    let body = json!({"items": [{"product_id": id(&product), "quantity": 2}], "payment_method": "pm_card_visa"});
    let order_id = id(&app.post("/orders/", Some(&ana), &body).await.expect(202));
    let dead_job = push_failing_probe(&app, 1).await;
    wait_for_job_state(&app, &admin_token, dead_job, "dead").await;
    World { app, admin_id, admin_token, dead_job, order_id, _worker: worker }
}

fn pages(world: &World) -> Vec<String> {
    vec![
        "/console/".into(),
        "/console/overview/live".into(),
        "/console/jobs".into(),
        "/console/jobs?state=dead&type=probe".into(),
        format!("/console/jobs/{}", world.dead_job),
        "/console/orders".into(),
        "/console/orders?q=ana%40example.com".into(),
        format!("/console/orders/{}", world.order_id),
    ]
}

fn actions(world: &World) -> Vec<String> {
    vec![
        format!("/console/jobs/{}/retry", world.dead_job),
        format!("/console/jobs/{}/discard", world.dead_job),
        "/console/jobs/retry".into(),
        format!("/console/orders/{}/cancel", world.order_id),
        "/console/logout".into(),
    ]
}

#[track_caller]
fn assert_no_data(page: &Page, world: &World) {
    assert!(!page.html.contains("onerror"), "no product names: {}", page.html);
    assert!(!page.html.contains("probe told to fail"), "no job errors: {}", page.html);
    assert!(!page.html.contains("ana@example.com"), "no customers: {}", page.html);
    assert!(!page.html.contains(&format!("Order #{}", world.order_id)), "no orders: {}", page.html);
}

/// Asserts the job is still dead with no operator action, and the order
/// still pending with no status change asked for.
async fn assert_nothing_changed(world: &World) {
    let job = world.app.get(&format!("/admin/jobs/{}", world.dead_job), Some(&world.admin_token)).await.expect(200);
    assert_eq!(job["state"], "dead", "{job:#}");
    assert_eq!(job["operator_actions"], json!([]), "{job:#}");
    let transitions = world.app.count("select count(*) from jobs where job_type = 'status_transition'").await;
    assert_eq!(transitions, 0, "no cancellation was requested");
    let order = world.app.get(&format!("/orders/{}", world.order_id), Some(&world.admin_token)).await.expect(200);
    assert_eq!(order["status"], "pending");
}

kassa_tests::black_box! {
#[tokio::test]
async fn anonymous_visitors_and_customers_get_the_sign_in_page_or_403_and_never_data() {
    let world = world(AppOptions::default()).await;
    let anonymous = Console::anonymous(&world.app);
    for path in pages(&world) {
        let page = anonymous.get(&path).await;
        page.assert_sign_in_redirect();
        assert_no_data(&page, &world);
    }
    for path in actions(&world) {
        let page = anonymous.post(&path, &[("csrf", "x"), ("reason", "r"), (&format!("job_{}", world.dead_job), "1")]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}: {}", page.html);
        assert_no_data(&page, &world);
    }
    let form = anonymous.get("/console/login").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.html.contains("name=\"password\""), "{}", form.html);

    // A customer cannot sign in, and their API token is no console session.
    let mut customer = Console::anonymous(&world.app);
    let refused = customer.sign_in("ana", PASSWORD).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.html);
    assert!(refused.session_cookie().is_none(), "no session for a customer");
    customer.cookie = Some(world.app.login("ana").await);
    for path in pages(&world) {
        customer.get(&path).await.assert_sign_in_redirect();
    }
    // Nor is an admin's bearer token: console sessions have their own audience.
    let mut bearer = Console::anonymous(&world.app);
    bearer.cookie = Some(world.admin_token.clone());
    bearer.get("/console/").await.assert_sign_in_redirect();

    // A sign-in form posted from another site is refused; from ours it works.
    let forged = anonymous
        .post_from(Some("https://evil.example"), "/console/login", &[("username", "root"), ("password", PASSWORD)])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.html);
    assert!(forged.session_cookie().is_none());
    let ours = anonymous
        .post_from(Some(&world.app.base_url), "/console/login", &[("username", "root"), ("password", PASSWORD)])
        .await;
    assert!(ours.session_cookie().is_some(), "{}", ours.html);

    let mut wrong = Console::anonymous(&world.app);
    let page = wrong.sign_in("root", "not the password").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.session_cookie().is_none());

    // An admin sees every page.
    let admin = Console::signed_in(&world.app, "root").await;
    for path in pages(&world) {
        let page = admin.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.html);
        assert!(page.header("content-type").is_some_and(|t| t.starts_with("text/html")), "{path}");
    }
    assert_nothing_changed(&world).await;

    // Demoted, the same session is refused at once.
    let (_, boss) = world.app.admin("boss").await;
    world.app.put(&format!("/admin/users/{}", world.admin_id), Some(&boss), &json!({"role": "customer"}))
        .await
        .expect(200);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let page = admin.get("/console/").await;
        if page.status == StatusCode::FORBIDDEN {
            assert_no_data(&page, &world);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a demoted admin kept the console: {}", page.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn forms_without_their_csrf_token_are_refused_and_change_nothing() {
    let world = world(AppOptions::default()).await;
    let admin = Console::signed_in(&world.app, "root").await;
    let other = Console::signed_in(&world.app, "root").await;
    let other_csrf = other.get("/console/").await.csrf();
    let csrf = admin.get(&format!("/console/jobs/{}", world.dead_job)).await.csrf();
    assert_ne!(csrf, other_csrf, "every session has its own token");
    let selected = format!("job_{}", world.dead_job);
    for path in actions(&world) {
        for token in [None, Some(""), Some("forged"), Some(other_csrf.as_str())] {
            let mut fields = vec![("reason", "because"), (selected.as_str(), "1")];
            if let Some(token) = token {
                fields.push(("csrf", token));
            }
            let page = admin.post(&path, &fields).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{path} with {token:?}: {}", page.html);
        }
    }
    assert_nothing_changed(&world).await;
    assert_eq!(admin.get("/console/").await.status, StatusCode::OK, "sign-out without a token did nothing");

    // With the token, the same forms work.
    let page = admin.post(&format!("/console/orders/{}/cancel", world.order_id), &[("csrf", &csrf), ("reason", "customer phoned")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let transitions = world.app.count("select count(*) from jobs where job_type = 'status_transition'").await;
    assert_eq!(transitions, 1, "the admin cancel was requested, as PUT /orders/{{id}}/status would");
    let page = admin.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    admin.get("/console/").await.assert_sign_in_redirect();
    assert_eq!(other.get("/console/").await.status, StatusCode::OK, "signing out ends that session only");
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn retry_discard_and_bulk_retry_are_recorded_with_operator_and_reason_as_the_api_records_them() {
    let world = world(AppOptions::default()).await;
    let app = &world.app;
    let admin = Console::signed_in(app, "root").await;
    let actor = format!("admin:{}", world.admin_id);

    let job_page = admin.get(&format!("/console/jobs/{}", world.dead_job)).await;
    assert!(job_page.html.contains("probe told to fail permanently"), "the page says why it died");
    assert!(job_page.html.contains("id=\"retry\""), "a dead job has a retry button");
    let csrf = job_page.csrf();
    let page = admin.post(&format!("/console/jobs/{}/retry", world.dead_job), &[("csrf", &csrf), ("reason", "gateway fixed")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let job = wait_for_job_state(app, &world.admin_token, world.dead_job, "dead").await;
    assert_eq!(job["operator_actions"][0]["action"], "requeue");
    assert_eq!(job["operator_actions"][0]["actor"], actor.as_str());
    assert_eq!(job["operator_actions"][0]["reason"], "gateway fixed");
    assert_eq!(job["attempt_history"].as_array().map(Vec::len), Some(2), "it ran again: {job:#}");

    // Discard needs a reason, as the API's does.
    let page = admin.post(&format!("/console/jobs/{}/discard", world.dead_job), &[("csrf", &csrf), ("reason", " ")]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.html);
    let page = admin.post(&format!("/console/jobs/{}/discard", world.dead_job), &[("csrf", &csrf), ("reason", "refunded by hand")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    let job = app.get(&format!("/admin/jobs/{}", world.dead_job), Some(&world.admin_token)).await.expect(200);
    assert_eq!(job["state"], "discarded");
    assert_eq!(job["operator_actions"][1], json!({"action": "discard", "actor": actor, "reason": "refunded by hand", "at": job["operator_actions"][1]["at"]}));
    let page = admin.post(&format!("/console/jobs/{}/retry", world.dead_job), &[("csrf", &csrf)]).await;
    assert_eq!(page.status, StatusCode::CONFLICT, "only dead jobs are retried: {}", page.html);

    // Several selected dead jobs at once, each through the same retry.
    let second = push_failing_probe(app, 2).await;
    let third = push_failing_probe(app, 3).await;
    wait_for_job_state(app, &world.admin_token, second, "dead").await;
    wait_for_job_state(app, &world.admin_token, third, "dead").await;
    let list = admin.get("/console/jobs?state=dead").await;
    assert!(list.html.contains(&format!("name=\"job_{second}\"")) && list.html.contains(&format!("name=\"job_{third}\"")));
    let page = admin
        .post("/console/jobs/retry", &[("csrf", &csrf), ("reason", "all at once"), (&format!("job_{second}"), "1"), (&format!("job_{third}"), "1")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
    for job_id in [second, third] {
        let job = wait_for_job_state(app, &world.admin_token, job_id, "dead").await;
        assert_eq!(job["operator_actions"][0]["actor"], actor.as_str());
        assert_eq!(job["operator_actions"][0]["reason"], "all at once");
    }
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn pages_escape_user_text_and_carry_the_hardening_headers() {
    let world = world(AppOptions::default()).await;
    let admin = Console::signed_in(&world.app, "root").await;
    let order = admin.get(&format!("/console/orders/{}", world.order_id)).await;
    assert!(order.html.contains("&lt;img src=x onerror=alert(1)&gt;"), "{}", order.html);
    assert!(!order.html.contains(XSS), "the product name is never markup");
    assert!(order.html.contains("id=\"timeline\""), "{}", order.html);
    let search = admin.get("/console/orders?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert!(!search.html.contains("<script>alert(1)"), "{}", search.html);
    assert!(search.html.contains("&lt;script&gt;alert(1)"), "{}", search.html);
    let found = admin.get("/console/orders?q=ANA%40example.com").await;
    assert!(found.html.contains(&format!("id=\"order-link-{}\"", world.order_id)), "search by e-mail: {}", found.html);

    let overview = admin.get("/console/").await;
    assert!(overview.html.contains("id=\"count-probe-dead\""), "{}", overview.html);
    assert!(overview.html.contains("state=dead\">1</a>"), "one dead probe: {}", overview.html);
    assert!(overview.html.contains("<svg"), "the chart is drawn server-side");
    assert!(overview.html.contains("w1"), "the worker is listed: {}", overview.html);

    for path in pages(&world).into_iter().chain(["/console/login".to_owned()]) {
        let page = admin.get(&path).await;
        let csp = page.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("script-src 'self'") && csp.contains("style-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(page.header("cache-control"), Some("no-store"), "{path}");
        assert!(!page.html.contains("<script>") && !page.html.contains(" style=\""), "{path}: no inline script or style");
    }
    for asset in ["/console/assets/console.css", "/console/assets/console.js"] {
        assert_eq!(admin.get(asset).await.status, StatusCode::OK, "{asset}");
    }
    let spec = world.app.get("/openapi.json", None).await.expect(200);
    assert!(!spec["paths"].as_object().expect("paths").keys().any(|p| p.starts_with("/console")), "not API");
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn session_cookies_are_http_only_strict_expiring_and_secure_behind_https() {
    let app = TestApp::spawn_with(AppOptions::default().env("KASSA_CONSOLE_SESSION_SECS", "2")).await;
    app.admin("root").await;
    let mut console = Console::anonymous(&app);
    let page = console.sign_in("root", PASSWORD).await;
    assert_eq!(page.header("location"), Some("/console/"));
    let cookie = page.session_cookie().expect("a session cookie").to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console", "Max-Age=2"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    assert_eq!(console.get("/console/").await.status, StatusCode::OK);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let page = console.get("/console/jobs").await;
        if page.status == StatusCode::SEE_OTHER {
            page.assert_sign_in_redirect();
            assert!(!page.html.contains("Jobs"), "no data once expired");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the session never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let page = console.post("/console/logout", &[("csrf", "any")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "an expired session acts on nothing");

    let https = TestApp::spawn_with(AppOptions::default().env("KASSA_PUBLIC_URL", "https://shop.example.com")).await;
    https.admin("root").await;
    let page = Console::anonymous(&https).sign_in("root", PASSWORD).await;
    let cookie = page.session_cookie().expect("a session cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn sign_in_is_rate_limited_like_auth_and_off_means_404() {
    let app = TestApp::spawn_with(
        AppOptions::default().env("KASSA_AUTH_RATE_PER_MIN", "1").env("KASSA_AUTH_BURST", "2"),
    )
    .await;
    let mut console = Console::anonymous(&app);
    let statuses = [
        console.sign_in("root", "wrong").await.status,
        console.sign_in("root", "wrong").await.status,
        console.sign_in("root", "wrong").await.status,
    ];
    assert_eq!(statuses, [StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS]);
    assert_eq!(console.get("/console/login").await.status, StatusCode::OK, "the form itself is not limited");

    let off = TestApp::spawn_with(AppOptions::default().env("KASSA_CONSOLE", "off")).await;
    let console = Console::anonymous(&off);
    for path in ["/console/", "/console/login", "/console/jobs", "/console/assets/console.js"] {
        assert_eq!(console.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(console.post("/console/login", &[("username", "root"), ("password", PASSWORD)]).await.status, StatusCode::NOT_FOUND);
    off.get("/healthz", None).await.expect(200);
}
}
