//! Input hardening through the real `kassa-api`: weak passwords, text that
//! reorders itself on screen, registration conflicts that say nothing,
//! order lines that overflow when merged, and currencies that are not ISO
//! 4217 codes in circulation.

use kassa_tests::app::{PASSWORD, TestApp, id};
use serde_json::{Value, json};

fn fields(problem: &Value) -> Vec<(String, String)> {
    problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| (e["field"].as_str().unwrap_or("").to_owned(), e["message"].as_str().unwrap_or("").to_owned()))
        .collect()
}

#[tokio::test]
async fn blank_and_common_passwords_are_refused_at_registration() {
    let app = TestApp::spawn().await;
    for (i, password) in
        ["          ", "\t \u{a0}    \n  ", "password", "12345678", "Password1", "qwertyuiop", "p@ssw0rd"]
            .into_iter()
            .enumerate()
    {
        let body = json!({"username": format!("ana{i}"), "email": format!("ana{i}@example.com"), "password": password});
        let problem = app.post("/auth/register", None, &body).await.expect_problem(422);
        let errors = fields(&problem);
        assert_eq!(errors.len(), 1, "{password:?}: {problem}");
        assert_eq!(errors[0].0, "password", "{password:?}: {problem}");
    }
    let admin = json!({"username": "root", "email": "root@example.com", "password": "iloveyou",
                       "secret_key": kassa_tests::app::ADMIN_SECRET});
    app.post("/auth/register-admin", None, &admin).await.expect_problem(422);
    // A passphrase is fine, and nothing refused above was created.
    app.register("ana0").await.expect(201);
    app.login("ana0").await;
}

#[tokio::test]
async fn shown_text_refuses_bidirectional_control_characters() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let spoofed = json!({"name": "Invoice\u{202E}fdp.exe", "description": "Warm \u{2067}light\u{2069}",
                         "category": "home\u{200E}", "price_cents": 100, "stock": 1});
    let problem = app.post("/products/", Some(&admin), &spoofed).await.expect_problem(422);
    let names: Vec<String> = fields(&problem).into_iter().map(|(field, _)| field).collect();
    assert_eq!(names, ["name", "description", "category"], "{problem}");
    let lamp = app.product(&admin, "Lamp", 100, 1, "home").await;
    app.put(&format!("/products/{}", id(&lamp)), Some(&admin), &json!({"name": "Lamp\u{061C}"}))
        .await
        .expect_problem(422);
    let spoofed_email = json!({"username": "eve", "email": "eve\u{202E}@example.com", "password": PASSWORD});
    let problem = app.post("/auth/register", None, &spoofed_email).await.expect_problem(422);
    assert_eq!(fields(&problem)[0].0, "email");
    // Right-to-left text itself is welcome.
    app.product(&admin, "مصباح مكتب", 100, 1, "منزل").await;
}

#[tokio::test]
async fn every_registration_conflict_gets_the_same_answer() {
    let app = TestApp::spawn().await;
    app.register("ana").await.expect(201);
    let same_username = json!({"username": "ana", "email": "other@example.com", "password": PASSWORD});
    let same_email = json!({"username": "other", "email": "ana@example.com", "password": PASSWORD});
    let admin_same_email = json!({"username": "root", "email": "ana@example.com", "password": PASSWORD,
                                  "secret_key": kassa_tests::app::ADMIN_SECRET});
    let answers = [
        app.post("/auth/register", None, &same_username).await.expect_problem(409),
        app.post("/auth/register", None, &same_email).await.expect_problem(409),
        app.post("/auth/register-admin", None, &admin_same_email).await.expect_problem(409),
    ];
    for answer in &answers {
        assert_eq!(answer["detail"], "username or e-mail already registered");
        assert_eq!(answer, &answers[0], "the answers cannot be told apart");
    }
}

#[tokio::test]
async fn order_lines_that_overflow_when_merged_are_a_422() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let (_, ana) = app.customer("ana").await;
    let lamp = app.product(&admin, "Lamp", 100, 5, "home").await;
    let half = i64::MAX / 2 + 1;
    let body =
        json!({"items": [{"product_id": id(&lamp), "quantity": half}, {"product_id": id(&lamp), "quantity": half}]});
    let problem = app.post("/orders/", Some(&ana), &body).await.expect_problem(422);
    let errors = fields(&problem);
    assert!(errors.iter().any(|(field, message)| field == "items" && message.contains("too large")), "{problem}");
    assert_eq!(app.count("select count(*) from orders").await, 0);
}

#[tokio::test]
async fn currencies_must_be_iso_4217_codes_in_circulation() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    for bad in ["XYZ", "usd ", "usd", "EURO", "XTS", "HRK"] {
        let body = json!({"name": "Lamp", "price_cents": 100, "stock": 1, "category": "home", "currency": bad});
        let problem = app.post("/products/", Some(&admin), &body).await.expect_problem(422);
        assert_eq!(fields(&problem)[0].0, "currency", "{bad:?}: {problem}");
    }
    for good in ["EUR", "JPY", "USD"] {
        let body = json!({"name": format!("Lamp {good}"), "price_cents": 100, "stock": 1, "category": "home", "currency": good});
        let product = app.post("/products/", Some(&admin), &body).await.expect(201);
        assert_eq!(product["currency"], good);
    }
}
