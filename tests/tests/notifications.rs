//! Customer e-mail over a real SMTP server (started inside the test process,
//! see `kassa_tests::smtp`): the right e-mails in order, each exactly once,
//! with correct parts and headers; a dead mail server, or one that goes down
//! and comes back, delays e-mails but never orders; permanent refusals do
//! not touch the order.

use std::collections::BTreeMap;
use std::time::Duration;

use kassa_tests::app::{PASSWORD, TestApp, id};
use kassa_tests::smtp::{SmtpSink, free_port};
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(60);

kassa_tests::black_box! {
#[tokio::test]
async fn the_full_lifecycle_sends_each_email_once_in_order_with_both_parts() {
    let smtp = SmtpSink::start();
    let app = TestApp::spawn().await;
    let _worker = app.spawn_worker(
        "w1",
        &[
            ("KASSA_SMTP_URL", &smtp.url()),
            ("KASSA_PUBLIC_URL", "https://shop.example.com"),
            ("KASSA_MAIL_FROM", "Shop <orders@shop.example.com>"),
        ],
    );
    let (_, admin) = app.admin("root").await;
    let (_, ana) = app.customer("ana").await;
    let lamp = app.product(&admin, "Desk <b>lamp</b>", 2500, 5, "home").await;
    let order = app
        .post("/orders/", Some(&ana), &json!({"items": [{"product_id": id(&lamp), "quantity": 2}]}))
        .await
        .expect(202);
    let order_id = id(&order);
    app.wait_for_status(order_id, "confirmed", &ana, SETTLE).await;
    let status = format!("/orders/{order_id}/status");
    app.put(&status, Some(&admin), &json!({"status": "shipped"})).await.expect(202);
    app.wait_for_status(order_id, "shipped", &ana, SETTLE).await;
    app.put(&status, Some(&admin), &json!({"status": "delivered"})).await.expect(202);
    app.wait_for_status(order_id, "delivered", &ana, SETTLE).await;
    app.assert_settled(SETTLE).await;

    let mails = smtp.wait_for_messages(4, SETTLE);
    assert_eq!(mails.len(), 4, "exactly one e-mail per event");
    let events: Vec<String> = mails.iter().map(|m| m.header("message-id").expect("Message-ID").to_owned()).collect();
    let expected: Vec<String> = ["received", "confirmed", "shipped", "delivered"]
        .iter()
        .map(|event| format!("<order-{order_id}-{event}@shop.example.com>"))
        .collect();
    assert_eq!(events, expected, "stable Message-IDs, in lifecycle order");
    for mail in &mails {
        assert_eq!(mail.header("to"), Some("ana@example.com"));
        assert_eq!(mail.header("from"), Some("Shop <orders@shop.example.com>"));
        assert!(mail.header("subject").expect("subject").contains(&format!("Order #{order_id}")));
        assert!(mail.text.contains("USD 50.00") && mail.html.contains("USD 50.00"), "{}", mail.text);
        assert!(mail.text.contains(&format!("https://shop.example.com/orders/{order_id}")));
        assert!(mail.text.contains("Desk <b>lamp</b>"), "the text part shows the name as is");
        assert!(
            mail.html.contains("Desk &lt;b&gt;lamp") && !mail.html.contains("<b>lamp"),
            "the HTML part escapes it: {}",
            mail.html
        );
    }
    assert!(mails[3].text.contains("delivered"));
    let detail = app.get(&format!("/orders/{order_id}"), Some(&ana)).await.expect(200);
    assert_eq!(detail["notifications"].as_array().expect("notifications").len(), 4);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn a_dead_mail_server_delays_emails_but_never_confirmations() {
    let port = free_port();
    let app = TestApp::spawn().await;
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    // Retries capped at 1 s so the test sees the e-mails soon after the server returns.
    let _worker = app.spawn_worker("w1", &[("KASSA_SMTP_URL", &smtp_url), ("KASSA_RETRY_MAX_MS", "1000")]);
    let (_, admin) = app.admin("root").await;
    let lamp = app.product(&admin, "Lamp", 100, 100, "home").await;
    let mut orders = Vec::new();
    for i in 0..8 {
        let (_, token) = app.customer(&format!("shopper{i}")).await;
        let body = json!({"items": [{"product_id": id(&lamp), "quantity": 1}]});
        orders.push((id(&app.post("/orders/", Some(&token), &body).await.expect(202)), token));
    }
    for (order_id, token) in &orders {
        app.wait_for_status(*order_id, "confirmed", token, Duration::from_secs(20)).await;
    }
    let db = app.db().await;
    let pool = db.pool();
    let sent: i64 = sqlx::query_scalar("select count(*) from notifications").fetch_one(pool).await.expect("count");
    assert_eq!(sent, 0, "nothing could be sent yet");
    let retried: i64 = sqlx::query_scalar("select count(*) from job_attempts a join jobs j on j.id = a.job_id where j.job_type = 'notify' and a.outcome = 'retry'")
        .fetch_one(pool)
        .await
        .expect("count");
    assert!(retried > 0, "notify jobs failed transiently and were rescheduled");

    let smtp = SmtpSink::start_on(port);
    let mails = smtp.wait_for_messages(16, SETTLE);
    app.assert_settled(SETTLE).await;
    let mails_after = smtp.messages();
    assert_eq!(mails_after.len(), 16, "received and confirmed for each of 8 orders, none twice");
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for mail in &mails {
        *per_id.entry(mail.header("message-id").expect("id").to_owned()).or_default() += 1;
    }
    assert!(per_id.values().all(|n| *n == 1), "{per_id:?}");
    let dead: i64 =
        sqlx::query_scalar("select count(*) from jobs where status = 'dead'").fetch_one(pool).await.expect("dead");
    assert_eq!(dead, 0);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn a_mail_server_that_goes_down_and_comes_back_gets_each_email_once() {
    let mut smtp = SmtpSink::start();
    let app = TestApp::spawn().await;
    // Retries capped at 1 s so the test sees the e-mails soon after the server returns.
    let _worker = app.spawn_worker(
        "w1",
        &[
            ("KASSA_SMTP_URL", &smtp.url()),
            ("KASSA_RETRY_MAX_MS", "1000"),
            ("KASSA_MAIL_FROM", "Shop <orders@shop.example.com>"),
        ],
    );
    let (_, admin) = app.admin("root").await;
    let (_, ana) = app.customer("ana").await;
    let lamp = app.product(&admin, "Lamp", 100, 10, "home").await;
    let body = json!({"items": [{"product_id": id(&lamp), "quantity": 1}]});
    let first = id(&app.post("/orders/", Some(&ana), &body).await.expect(202));
    app.wait_for_status(first, "confirmed", &ana, SETTLE).await;
    smtp.wait_for_messages(2, SETTLE);

    // Down: the worker's pooled connection is cut and the port refuses.
    smtp.stop();
    let second = id(&app.post("/orders/", Some(&ana), &body).await.expect(202));
    app.wait_for_status(second, "confirmed", &ana, SETTLE).await;
    let db = app.db().await;
    let pool = db.pool();
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let retried: i64 = sqlx::query_scalar(
            "select count(*) from job_attempts a join jobs j on j.id = a.job_id
             where j.job_type = 'notify' and a.outcome = 'retry'",
        )
        .fetch_one(pool)
        .await
        .expect("count");
        if retried > 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no notify job was retried while the server was down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent_for_second: i64 = sqlx::query_scalar("select count(*) from notifications where order_id = $1")
        .bind(second)
        .fetch_one(pool)
        .await
        .expect("count");
    assert_eq!(sent_for_second, 0, "nothing reached a stopped server");

    // Up again on the same port: the retries deliver, none twice.
    smtp.restart();
    smtp.wait_for_messages(4, SETTLE);
    app.assert_settled(SETTLE).await;
    let mails = smtp.messages();
    let ids: Vec<&str> = mails.iter().map(|m| m.header("message-id").expect("Message-ID")).collect();
    let expected: Vec<String> =
        [(first, "received"), (first, "confirmed"), (second, "received"), (second, "confirmed")]
            .iter()
            .map(|(order_id, event)| format!("<order-{order_id}-{event}@shop.example.com>"))
            .collect();
    let mut sorted_ids = ids.clone();
    sorted_ids.sort_unstable();
    let mut sorted_expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    sorted_expected.sort_unstable();
    assert_eq!(sorted_ids, sorted_expected, "each (order, event) e-mail exactly once");
    assert_eq!(ids, expected, "in arrival order: the first order's before the stop, then the second's in event order");
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn a_permanent_refusal_kills_the_email_job_not_the_order() {
    let smtp = SmtpSink::start();
    let app = TestApp::spawn().await;
    let _worker = app.spawn_worker("w1", &[("KASSA_SMTP_URL", &smtp.url())]);
    let (_, admin) = app.admin("root").await;
    let body = json!({"username": "rejected", "email": "reject.me@example.com", "password": PASSWORD});
    app.post("/auth/register", None, &body).await.expect(201);
    let token = app.login("rejected").await;
    let lamp = app.product(&admin, "Lamp", 100, 5, "home").await;
    let order = app
        .post("/orders/", Some(&token), &json!({"items": [{"product_id": id(&lamp), "quantity": 1}]}))
        .await
        .expect(202);
    app.wait_for_status(id(&order), "confirmed", &token, SETTLE).await;
    let db = app.db().await;
    let pool = db.pool();
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let dead: Vec<(String,)> =
            sqlx::query_as("select last_error from jobs where job_type = 'notify' and status = 'dead'")
                .fetch_all(pool)
                .await
                .expect("dead jobs");
        if dead.len() == 2 {
            assert!(dead.iter().all(|(e,)| e.contains("550")), "{dead:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "notify jobs never went dead: {dead:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(smtp.messages().is_empty());
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn without_smtp_emails_are_written_to_the_outbox() {
    let app = TestApp::spawn().await;
    let _worker = app.spawn_worker("w1", &[]);
    let (_, admin) = app.admin("root").await;
    let (_, ana) = app.customer("ana").await;
    let lamp = app.product(&admin, "Lamp", 100, 5, "home").await;
    let order = app
        .post("/orders/", Some(&ana), &json!({"items": [{"product_id": id(&lamp), "quantity": 1}]}))
        .await
        .expect(202);
    app.wait_for_status(id(&order), "confirmed", &ana, SETTLE).await;
    app.assert_settled(SETTLE).await;
    let outbox = app.data_dir.join("outbox");
    let files: Vec<_> = std::fs::read_dir(&outbox).expect("outbox exists").filter_map(Result::ok).collect();
    assert_eq!(files.len(), 2, "received and confirmed");
    let mail = kassa_tests::smtp::parse(&std::fs::read(files[0].path()).expect("eml"));
    assert!(mail.header("subject").expect("subject").starts_with(&format!("Order #{}", id(&order))));
}
}
