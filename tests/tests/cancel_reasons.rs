//! A person's words never become a reason code, a metric label or a report
//! key: a cancellation keeps a code from the closed set (`customer_request`,
//! `admin_request`, …) and the words as a separate note, shown (as data,
//! escaped by JSON) on the order, in its history and timeline.

use std::time::Duration;

use kassa_tests::admin::scrape_api;
use kassa_tests::app::{TestApp, id};
use kassa_tests::prometheus;
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(30);
const WORDS: &str = "changed my mind <img src=x onerror=alert(1)> \"quoted\"";

kassa_tests::black_box! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_text_is_a_note_and_the_reason_stays_a_code() {
    let app = TestApp::spawn().await;
    let _worker = app.spawn_worker("w1", &[]);
    let (_, admin) = app.admin("root").await;
    let (_, ana) = app.customer("ana").await;
    let lamp = app.product(&admin, "Lamp", 100, 10, "home").await;
    let body = json!({"items": [{"product_id": lamp["id"], "quantity": 1}]});
    let by_customer = id(&app.post("/orders/", Some(&ana), &body).await.expect(202));
    let by_admin = id(&app.post("/orders/", Some(&ana), &body).await.expect(202));
    app.wait_for_status(by_customer, "confirmed", &ana, SETTLE).await;
    app.wait_for_status(by_admin, "confirmed", &ana, SETTLE).await;

    app.post(&format!("/orders/{by_customer}/cancel"), Some(&ana), &json!({"reason": WORDS})).await.expect(202);
    let order = app.wait_for_status(by_customer, "cancelled", &ana, SETTLE).await;
    assert_eq!(order["cancel_reason"], "customer_request");
    assert_eq!(order["cancel_note"], WORDS);
    let cancel = order["history"].as_array().expect("history").last().expect("a move").clone();
    assert_eq!((cancel["reason"].as_str(), cancel["note"].as_str()), (Some("customer_request"), Some(WORDS)));
    let timeline = order["timeline"].as_array().expect("timeline");
    assert!(timeline.iter().any(|e| e["kind"] == "status" && e["details"]["note"] == WORDS), "{timeline:?}");

    let path = format!("/orders/{by_admin}/status");
    app.put(&path, Some(&admin), &json!({"status": "cancelled", "reason": "out_of_stock"})).await.expect(202);
    let order = app.wait_for_status(by_admin, "cancelled", &ana, SETTLE).await;
    assert_eq!(order["cancel_reason"], "admin_request", "a code typed as words is still only words");
    assert_eq!(order["cancel_note"], "out_of_stock");

    app.assert_settled(SETTLE).await;
    let report = app.get("/admin/reports", Some(&admin)).await.expect(200);
    let keys: Vec<&String> = report["cancellations_by_reason"].as_object().expect("reasons").keys().collect();
    assert_eq!(keys, ["admin_request", "customer_request"]);
    let scrape = prometheus::parse(&scrape_api(&app, None).await).expect("valid metrics");
    for sample in scrape.samples.iter().filter(|s| s.name == "kassa_orders_cancelled") {
        let reason = &sample.labels["reason"];
        assert!(!reason.contains(' ') && !reason.contains('<'), "free text became a label: {reason}");
    }
    assert_eq!(scrape.sum("kassa_orders_cancelled", &[("reason", "customer_request")]), 1.0);
    let outbox = app.data_dir.join("outbox");
    let deadline = std::time::Instant::now() + SETTLE;
    let cancelled_mail = loop {
        let mails: Vec<String> = std::fs::read_dir(&outbox)
            .expect("outbox")
            .filter_map(Result::ok)
            .filter_map(|file| std::fs::read_to_string(file.path()).ok())
            .filter(|text| text.contains("cancel"))
            .collect();
        if mails.len() >= 2 {
            break mails;
        }
        assert!(std::time::Instant::now() < deadline, "the cancellation e-mails never came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for mail in &cancelled_mail {
        assert!(!mail.contains("changed my mind") && !mail.contains("onerror"), "the note reached an e-mail");
    }
    assert!(cancelled_mail.iter().any(|m| m.contains("you asked us to cancel it")));
}
}
