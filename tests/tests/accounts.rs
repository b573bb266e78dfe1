//! Accounts, tokens and roles, through the real `kassa-api` binary.

use std::time::Duration;

use kassa_tests::app::{ADMIN_SECRET, AppOptions, PASSWORD, TestApp};
use serde_json::json;

kassa_tests::black_box! {
#[tokio::test]
async fn registration_returns_the_user_without_any_password_material() {
    let app = TestApp::spawn().await;
    let user = app.register("ana").await.expect(201);
    assert_eq!(user["username"], "ana");
    assert_eq!(user["email"], "ana@example.com");
    assert_eq!(user["role"], "customer");
    let text = user.to_string();
    assert!(!text.contains("password") && !text.contains("argon2"), "{text}");
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn invalid_registrations_list_every_bad_field_and_create_nothing() {
    let app = TestApp::spawn().await;
    let body = json!({"username": "a b", "email": "not-an-email", "password": "short"});
    let problem = app.post("/auth/register", None, &body).await.expect_problem(422);
    let fields: Vec<&str> =
        problem["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, ["username", "email", "password"]);
    let missing = app.post("/auth/register", None, &json!({"username": "ana"})).await.expect_problem(422);
    assert!(missing["detail"].is_string());
    let login = app.post("/auth/login", None, &json!({"username": "a b", "password": "short"})).await;
    login.expect_problem(401);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn duplicate_usernames_and_emails_conflict() {
    let app = TestApp::spawn().await;
    app.register("ana").await.expect(201);
    app.register("ana").await.expect_problem(409);
    let same_email = json!({"username": "ana2", "email": "ANA@example.com", "password": PASSWORD});
    let problem = app.post("/auth/register", None, &same_email).await.expect_problem(409);
    assert!(problem["detail"].as_str().expect("detail").contains("e-mail"));
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn admin_registration_needs_the_bootstrap_secret() {
    let app = TestApp::spawn().await;
    let wrong = json!({"username": "boss", "email": "boss@example.com", "password": PASSWORD, "secret_key": "guess"});
    app.post("/auth/register-admin", None, &wrong).await.expect_problem(403);
    // Nothing was created: the name is still free.
    app.register("boss").await.expect(201);
    let (_, token) = app.admin("root").await;
    let me = app.get("/auth/me", Some(&token)).await.expect(200);
    assert_eq!(me["role"], "admin");
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn a_generated_admin_secret_is_printed_once_and_works() {
    let app = TestApp::spawn_with(AppOptions::default().env("KASSA_ADMIN_SECRET", "")).await;
    let lines = app.process.lines();
    let printed: Vec<&String> = lines.iter().filter(|l| l.contains("admin bootstrap secret")).collect();
    assert_eq!(printed.len(), 1, "{lines:?}");
    let secret = printed[0]
        .split("admin bootstrap secret for this run: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("secret in the log line");
    assert_ne!(secret, ADMIN_SECRET);
    let body = json!({"username": "boss", "email": "boss@example.com", "password": PASSWORD, "secret_key": secret});
    app.post("/auth/register-admin", None, &body).await.expect(201);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn login_accepts_json_email_and_the_oauth2_password_form() {
    let app = TestApp::spawn().await;
    app.register("ana").await.expect(201);
    let token =
        app.post("/auth/login", None, &json!({"username": "ana@example.com", "password": PASSWORD})).await.expect(200);
    assert_eq!(token["token_type"], "bearer");
    assert!(token["expires_in"].as_u64().expect("expires_in") > 0);
    let form = app
        .client
        .post(format!("{}/auth/login", app.base_url))
        .form(&[("grant_type", "password"), ("username", "ana"), ("password", PASSWORD)])
        .send()
        .await
        .expect("sent");
    let reply = TestApp::reply(form).await.expect(200);
    let me = app.get("/auth/me", reply["access_token"].as_str()).await.expect(200);
    assert_eq!(me["username"], "ana");
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn unknown_users_and_wrong_passwords_fail_identically() {
    let app = TestApp::spawn().await;
    app.register("ana").await.expect(201);
    let wrong = app.post("/auth/login", None, &json!({"username": "ana", "password": "wrong password"})).await;
    let unknown = app.post("/auth/login", None, &json!({"username": "nobody", "password": "wrong password"})).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert_eq!(wrong.body, unknown.body);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn auth_routes_are_rate_limited_per_client_with_retry_after() {
    let options = AppOptions::default().env("KASSA_AUTH_RATE_PER_MIN", "1").env("KASSA_AUTH_BURST", "3");
    let app = TestApp::spawn_with(options).await;
    let body = json!({"username": "nobody", "password": "whatever1"});
    for _ in 0..3 {
        app.post("/auth/login", None, &body).await.expect_problem(401);
    }
    let limited = app.post("/auth/login", None, &body).await;
    let retry_after: u64 = limited.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!(retry_after >= 1);
    limited.expect_problem(429);
    // Other routes are not limited.
    app.get("/products/", None).await.expect(200);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn bad_tokens_are_refused_and_customers_cannot_use_admin_routes() {
    let app = TestApp::spawn().await;
    let (_, token) = app.customer("ana").await;
    let product = json!({"name": "Lamp", "price_cents": 100, "stock": 1, "category": "home"});
    app.post("/products/", None, &product).await.expect_problem(401);
    app.post("/products/", Some("not.a.token"), &product).await.expect_problem(401);
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    app.get("/auth/me", Some(&tampered)).await.expect_problem(401);
    app.get("/auth/me", Some(&"x".repeat(16 * 1024))).await.expect_problem(401);
    app.post("/products/", Some(&token), &product).await.expect_problem(403);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn tokens_survive_a_restart_with_the_generated_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = AppOptions::persistent(dir.path()).await;
    let first = TestApp::spawn_with(options.clone()).await;
    let (_, token) = first.customer("ana").await;
    drop(first);
    let second = TestApp::spawn_with(options).await;
    second.get("/auth/me", Some(&token)).await.expect(200);
    let key = dir.path().join("jwt-secret.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(key).expect("key file").permissions());
    assert_eq!(mode & 0o777, 0o600);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn the_create_admin_command_makes_an_admin_that_can_log_in() {
    let app = TestApp::spawn().await;
    let output = std::process::Command::new(kassa_tests::binaries::binary("kassa-api"))
        .args(["create-admin", "--username", "ops", "--email", "ops@example.com"])
        .env("KASSA_DATA_DIR", &app.data_dir)
        .env("KASSA_DATABASE_URL", app.database_url())
        .env("KASSA_ADMIN_PASSWORD", PASSWORD)
        .output()
        .expect("create-admin runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = app.login("ops").await;
    let me = app.get("/auth/me", Some(&token)).await.expect(200);
    assert_eq!(me["role"], "admin");
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn sigterm_shuts_the_api_down_cleanly() {
    let mut app = TestApp::spawn().await;
    app.process.signal("TERM");
    let status = app.process.wait_exit(Duration::from_secs(10)).expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}
}
