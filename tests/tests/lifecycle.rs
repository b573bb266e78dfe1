//! The order lifecycle after confirmation: admin moves, illegal moves,
//! customer and admin cancellations with stock restored once and payments
//! refunded once, and cancels racing with the pipeline.

use std::time::Duration;

use kassa_tests::app::{TestApp, id};
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(30);

kassa_tests::black_box! {
#[tokio::test]
async fn admins_ship_and_deliver_and_every_move_is_in_the_history() {
    let app = TestApp::spawn().await;
    let _worker = app.spawn_worker("w1", &[]);
    let (_, admin) = app.admin("root").await;
    let (_, ana) = app.customer("ana").await;
    let lamp = app.product(&admin, "Lamp", 100, 5, "home").await;
    let order = app
        .post("/orders/", Some(&ana), &json!({"items": [{"product_id": id(&lamp), "quantity": 1}]}))
        .await
        .expect(202);
    let path = format!("/orders/{}/status", id(&order));
    app.wait_for_status(id(&order), "confirmed", &ana, SETTLE).await;

    app.put(&path, Some(&ana), &json!({"status": "shipped"})).await.expect_problem(403);
    app.put(&path, Some(&admin), &json!({"status": "lost"})).await.expect_problem(422);
    let skipped = app.put(&path, Some(&admin), &json!({"status": "delivered"})).await.expect_problem(409);
    assert_eq!(skipped["allowed"], json!(["shipped", "cancelled"]));
    app.put(&path, Some(&admin), &json!({"status": "shipped", "reason": "DHL 123"})).await.expect(202);
    app.wait_for_status(id(&order), "shipped", &ana, SETTLE).await;
    let no_cancel = app.put(&path, Some(&admin), &json!({"status": "cancelled"})).await.expect_problem(409);
    assert_eq!(no_cancel["allowed"], json!(["delivered"]));
    app.post(&format!("/orders/{}/cancel", id(&order)), Some(&ana), &json!({})).await.expect_problem(409);
    app.put(&path, Some(&admin), &json!({"status": "delivered"})).await.expect(202);
    let delivered = app.wait_for_status(id(&order), "delivered", &ana, SETTLE).await;
    for status in ["pending", "confirmed", "shipped", "cancelled", "delivered"] {
        app.put(&path, Some(&admin), &json!({"status": status})).await.expect_problem(409);
    }
    let moves: Vec<(Value, Value, Value)> = delivered["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| (h["from"].clone(), h["to"].clone(), h["actor"].clone()))
        .collect();
    assert_eq!(moves[2].0, "confirmed");
    assert_eq!(moves[2].1, "shipped");
    assert!(moves[2].2.as_str().expect("actor").starts_with("admin:"));
    assert_eq!(delivered["history"][2]["note"], "DHL 123", "an admin's words are kept as a note");
    assert_eq!(delivered["history"][2]["reason"], Value::Null, "only cancellations carry a reason code");
    assert_eq!(moves.last().map(|m| m.1.clone()), Some(json!("delivered")));
    assert_eq!(app.stock(id(&lamp)).await, 4, "delivered orders keep their units");
    app.assert_settled(SETTLE).await;
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn cancelling_a_confirmed_order_restores_stock_and_refunds_once() {
    let app = TestApp::spawn().await;
    let _worker = app.spawn_worker("w1", &[]);
    let (_, admin) = app.admin("root").await;
    let (_, ana) = app.customer("ana").await;
    let (_, bob) = app.customer("bob").await;
    let lamp = app.product(&admin, "Lamp", 700, 5, "home").await;
    let order = app
        .post("/orders/", Some(&ana), &json!({"items": [{"product_id": id(&lamp), "quantity": 2}]}))
        .await
        .expect(202);
    app.wait_for_status(id(&order), "confirmed", &ana, SETTLE).await;
    assert_eq!(app.stock(id(&lamp)).await, 3);
    let cancel = format!("/orders/{}/cancel", id(&order));
    app.post(&cancel, Some(&bob), &json!({})).await.expect_problem(404);
    let accepted = app.client.post(format!("{}{cancel}", app.base_url)).bearer_auth(&ana).send().await.expect("sent");
    assert_eq!(accepted.status(), 202, "a body is optional");
    let cancelled = app.wait_for_status(id(&order), "cancelled", &ana, SETTLE).await;
    assert_eq!(cancelled["cancel_reason"], "customer_request");
    app.assert_settled(SETTLE).await;
    let refunded = app.get(&format!("/orders/{}", id(&order)), Some(&ana)).await.expect(200);
    assert_eq!(refunded["payment"]["status"], "refunded");
    assert!(refunded["payment"]["refund_reference"].as_str().is_some_and(|r| r.starts_with("re_")));
    // A second cancel is refused; nothing is restored or refunded twice.
    app.post(&cancel, Some(&ana), &json!({})).await.expect_problem(409);
    app.put(&format!("/orders/{}/status", id(&order)), Some(&admin), &json!({"status": "cancelled"}))
        .await
        .expect_problem(409);
    assert_eq!(app.stock(id(&lamp)).await, 5);
    assert_eq!(app.count("select count(*) from sandbox_ledger where kind = 'refund'").await, 1);
    let kinds: Vec<&str> =
        refunded["timeline"].as_array().expect("timeline").iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in ["status", "job_attempt", "payment", "refund"] {
        assert!(kinds.contains(&kind), "timeline lacks {kind}: {kinds:?}");
    }
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn a_cancel_racing_the_pipeline_ends_cancelled_with_stock_restored_and_money_returned() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let (_, ana) = app.customer("ana").await;
    let lamp = app.product(&admin, "Lamp", 300, 100, "home").await;
    let mut orders = Vec::new();
    for method in ["pm_card_visa", "pm_card_flaky", "pm_card_visa", "pm_card_flaky", "pm_card_visa", "pm_card_visa"] {
        let body = json!({"items": [{"product_id": id(&lamp), "quantity": 3}], "payment_method": method});
        orders.push(id(&app.post("/orders/", Some(&ana), &body).await.expect(202)));
    }
    // Workers start while the cancels are being sent: each cancel lands at
    // some point of its order's pipeline (before reserve, during charge retries, after confirm).
    let _workers = [app.spawn_worker("w1", &[]), app.spawn_worker("w2", &[])];
    for order_id in &orders {
        let reply =
            app.post(&format!("/orders/{order_id}/cancel"), Some(&ana), &json!({"reason": "changed my mind"})).await;
        assert!(reply.status == 202 || reply.status == 409, "{}", reply.body);
    }
    app.assert_settled(SETTLE).await;
    for order_id in &orders {
        let order = app.get(&format!("/orders/{order_id}"), Some(&ana)).await.expect(200);
        assert_eq!(order["status"], "cancelled", "the cancel wins over confirmation: {order}");
        let payment = &order["payment"];
        assert!(
            payment.is_null()
                || payment["status"] == "refunded"
                || payment["status"] == "declined"
                || payment["status"] == "failed",
            "never charged or refunded: {payment}"
        );
    }
    assert_eq!(app.stock(id(&lamp)).await, 100);
}
}
