//! Sessions and accounts: logout revokes the presented token, an admin
//! disabling an account revokes all of its tokens, roles are read from the
//! database on each request (a demoted admin loses admin at once), a token
//! of a deleted account is a 401 not a 500, the bootstrap secret makes only
//! the first admin, and e-mail addresses are unique by their NFKC
//! case-folded form.

use kassa_tests::app::{ADMIN_SECRET, PASSWORD, TestApp};
use serde_json::json;

kassa_tests::black_box! {
#[tokio::test]
async fn logout_revokes_the_presented_token_and_only_that_one() {
    let app = TestApp::spawn().await;
    let (_, first) = app.customer("ana").await;
    let second = app.login("ana").await;
    app.get("/auth/me", Some(&first)).await.expect(200);
    app.post("/auth/logout", Some(&first), &json!({})).await.expect(204);
    let refused = app.get("/auth/me", Some(&first)).await.expect_problem(401);
    assert!(refused["detail"].as_str().unwrap_or("").contains("revoked"), "{refused}");
    app.post("/auth/logout", Some(&first), &json!({})).await.expect_problem(401);
    app.get("/auth/me", Some(&second)).await.expect(200);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn disabling_an_account_revokes_every_token_at_once_and_blocks_login() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let (ana_id, first) = app.customer("ana").await;
    let second = app.login("ana").await;
    let disabled = app.put(&format!("/admin/users/{ana_id}"), Some(&admin), &json!({"disabled": true})).await.expect(200);
    assert!(disabled["disabled_at"].is_string(), "{disabled}");
    for token in [&first, &second] {
        app.get("/auth/me", Some(token)).await.expect_problem(401);
        app.get("/orders/my-orders", Some(token)).await.expect_problem(401);
    }
    let login = app.post("/auth/login", None, &json!({"username": "ana", "password": PASSWORD})).await;
    login.expect_problem(401);
    app.put(&format!("/admin/users/{ana_id}"), Some(&admin), &json!({"disabled": false})).await.expect(200);
    app.get("/auth/me", Some(&first)).await.expect_problem(401);
    let fresh = app.login("ana").await;
    app.get("/auth/me", Some(&fresh)).await.expect(200);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn a_demoted_admin_loses_admin_on_the_next_request() {
    let app = TestApp::spawn().await;
    let (_, root) = app.admin("root").await;
    let (ops_id, ops) = app.admin("ops").await;
    app.get("/admin/dashboard", Some(&ops)).await.expect(200);
    app.put(&format!("/admin/users/{ops_id}"), Some(&root), &json!({"role": "customer"})).await.expect(200);
    app.get("/admin/dashboard", Some(&ops)).await.expect_problem(403);
    let me = app.get("/auth/me", Some(&ops)).await.expect(200);
    assert_eq!(me["role"], "customer");
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn the_last_enabled_admin_cannot_be_disabled_or_demoted() {
    let app = TestApp::spawn().await;
    let (root_id, root) = app.admin("root").await;
    let path = format!("/admin/users/{root_id}");
    app.put(&path, Some(&root), &json!({"disabled": true})).await.expect_problem(409);
    app.put(&path, Some(&root), &json!({"role": "customer"})).await.expect_problem(409);
    app.get("/admin/dashboard", Some(&root)).await.expect(200);
    app.put("/admin/users/999999", Some(&root), &json!({"disabled": true})).await.expect_problem(404);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn a_token_of_a_deleted_account_is_refused_with_401() {
    let app = TestApp::spawn().await;
    let (ana_id, token) = app.customer("ana").await;
    app.get("/auth/me", Some(&token)).await.expect(200);
    let db = app.db().await;
    sqlx::query("delete from users where id = $1").bind(ana_id).execute(db.pool()).await.expect("deleted");
    db.close().await;
    // Within the session cache's few seconds the account may still be
    // remembered; wait for the condition, never a 500.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let reply = app.get("/orders/my-orders", Some(&token)).await;
        match reply.status.as_u16() {
            401 => break,
            200 => assert!(std::time::Instant::now() < deadline, "the deleted account's token still works"),
            other => panic!("a deleted account's token must get 401, got {other}: {}", reply.body),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.get("/auth/me", Some(&token)).await.expect_problem(401);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn the_bootstrap_secret_makes_only_the_first_admin() {
    let app = TestApp::spawn().await;
    let first = json!({"username": "root", "email": "root@example.com", "password": PASSWORD, "secret_key": ADMIN_SECRET});
    app.post("/auth/register-admin", None, &first).await.expect(201);
    let second = json!({"username": "eve", "email": "eve@example.com", "password": PASSWORD, "secret_key": ADMIN_SECRET});
    let refused = app.post("/auth/register-admin", None, &second).await.expect_problem(403);
    assert!(refused["detail"].as_str().unwrap_or("").contains("admin exists already"), "{refused}");
    // Nothing was created: the name is still free for an admin to use.
    let root = app.login("root").await;
    let made = json!({"username": "eve", "email": "eve@example.com", "password": PASSWORD, "role": "admin"});
    app.post("/admin/users", Some(&root), &made).await.expect(201);
    let eve = app.login("eve").await;
    app.get("/admin/dashboard", Some(&eve)).await.expect(200);
    let (_, customer) = app.customer("ana").await;
    app.post("/admin/users", Some(&customer), &json!({"username": "x", "email": "x@example.com", "password": PASSWORD}))
        .await
        .expect_problem(403);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn emails_are_unique_by_their_nfkc_case_folded_form() {
    let app = TestApp::spawn().await;
    let app = &app;
    let register = |username: &str, email: &str| {
        let body = json!({"username": username, "email": email, "password": PASSWORD});
        async move { app.post("/auth/register", None, &body).await }
    };
    register("ana", "Ana@Example.com").await.expect(201);
    for (username, email) in [("ana2", "ana@example.COM"), ("ana3", "ＡＮＡ@example.com")] {
        let problem = register(username, email).await.expect_problem(409);
        assert_eq!(problem["detail"], "username or e-mail already registered");
    }
    register("sophie", "STRASSE@example.com").await.expect(201);
    register("sophie2", "straße@example.com").await.expect_problem(409);
    let login = app.post("/auth/login", None, &json!({"username": "ａｎａ@EXAMPLE.com", "password": PASSWORD})).await;
    assert_eq!(login.expect(200)["token_type"], "bearer");
}
}
