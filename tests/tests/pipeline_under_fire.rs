//! The pipeline's promises under concurrency and crashes: no oversell, no
//! double charge, no lost order — with real processes killed by SIGKILL.

use std::sync::Arc;
use std::time::Duration;

use kassa_tests::app::{AppOptions, TestApp};
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(120);

async fn customers(app: &TestApp, count: usize) -> Vec<String> {
    let mut tokens = Vec::with_capacity(count);
    for i in 0..count {
        tokens.push(app.customer(&format!("shopper{i}")).await.1);
    }
    tokens
}

kassa_tests::black_box! {
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checkouts_never_oversell_the_last_units() {
    let app = Arc::new(TestApp::spawn().await);
    let workers: Vec<_> = (1..=3).map(|i| app.spawn_worker(&format!("w{i}"), &[])).collect();
    let (_, admin) = app.admin("root").await;
    let product = app.product(&admin, "Limited edition", 500, 100, "drops").await;
    let product_id = product["id"].as_i64().expect("id");
    let tokens = Arc::new(customers(&app, 50).await);
    let body = Arc::new(json!({"items": [{"product_id": product_id, "quantity": 1}]}));
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let (app, tokens, body) = (app.clone(), tokens.clone(), body.clone());
        tasks.push(tokio::spawn(async move { app.post("/orders/", Some(&tokens[i % 50]), &body).await }));
    }
    let mut accepted = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let reply = task.await.expect("request task");
        match reply.status.as_u16() {
            202 => accepted.push(reply.body["id"].as_i64().expect("id")),
            409 => refused += 1,
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    assert_eq!(accepted.len() + refused, 1000);
    app.assert_settled(SETTLE).await;
    assert_eq!(app.count("select count(*) from orders where status = 'confirmed'").await, 100);
    let out_of_stock =
        app.count("select count(*) from orders where status = 'cancelled' and cancel_reason = 'out_of_stock'").await;
    assert_eq!(out_of_stock, i64::try_from(accepted.len()).expect("fits") - 100);
    assert_eq!(app.get(&format!("/products/{product_id}"), None).await.expect(200)["stock"], 0);
    let charges =
        app.count("select count(*) from sandbox_ledger where kind = 'charge' and outcome = 'succeeded'").await;
    assert_eq!(charges, 100);
    drop(workers);
}
}

kassa_tests::black_box! {
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_killed_mid_flight_lose_nothing_and_charge_once() {
    let app = Arc::new(TestApp::spawn().await);
    let flaky_gateway = [("KASSA_SANDBOX_FAILURE_RATE", "0.2"), ("KASSA_SANDBOX_LATENCY_MS", "5")];
    let mut workers: Vec<_> = (1..=2).map(|i| app.spawn_worker(&format!("w{i}"), &flaky_gateway)).collect();
    let (_, admin) = app.admin("root").await;
    let products: Vec<i64> = {
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(app.product(&admin, &format!("Item {i}"), 100 + i, 40, "misc").await["id"].as_i64().expect("id"));
        }
        ids
    };
    let tokens = customers(&app, 10).await;
    let mut accepted: Vec<i64> = Vec::new();
    let mut generation = 2;
    for round in 0..6 {
        for (i, token) in tokens.iter().enumerate() {
            let method = match (round + i) % 7 {
                0 => "pm_card_chargeDeclined",
                1 => "pm_card_flaky",
                _ => "pm_card_visa",
            };
            let body = json!({"items": [{"product_id": products[(round + i) % 5], "quantity": 1 + i % 3},
                                        {"product_id": products[(round + i + 1) % 5], "quantity": 1}],
                              "payment_method": method});
            let reply = app.post("/orders/", Some(token), &body).await;
            if reply.status == 202 {
                accepted.push(reply.body["id"].as_i64().expect("id"));
            }
        }
        // Kill a worker at an arbitrary moment of the work in flight, then replace it.
        let victim = round % workers.len();
        workers[victim].signal("KILL");
        generation += 1;
        workers[victim] = app.spawn_worker(&format!("w{generation}"), &flaky_gateway);
    }
    assert!(accepted.len() >= 30, "most orders were accepted: {}", accepted.len());
    app.assert_settled(SETTLE).await;
    for order_id in &accepted {
        let order = app.get(&format!("/orders/{order_id}"), Some(&admin)).await.expect(200);
        let status = order["status"].as_str().expect("status");
        assert!(status == "confirmed" || status == "cancelled", "order {order_id} is {status}");
    }
}
}

kassa_tests::black_box! {
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_acknowledged_before_the_api_is_killed_all_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = AppOptions::persistent(dir.path()).await;
    let mut app = TestApp::spawn_with(options.clone()).await;
    let (_, admin) = app.admin("root").await;
    let product = app.product(&admin, "Lamp", 100, 1000, "home").await;
    let body = json!({"items": [{"product_id": product["id"], "quantity": 1}]});
    let mut acknowledged: Vec<(Value, String)> = Vec::new();
    // Five shoppers, ten orders each: within the per-user checkout burst.
    for shopper in 0..5 {
        let (_, token) = app.customer(&format!("shopper{shopper}")).await;
        for _ in 0..10 {
            acknowledged.push((app.post("/orders/", Some(&token), &body).await.expect(202), token.clone()));
        }
    }
    app.process.signal("KILL");
    app.process.wait_exit(Duration::from_secs(10)).expect("the API died");
    let app = TestApp::spawn_with(options).await;
    let _worker = app.spawn_worker("w1", &[]);
    for (order, token) in &acknowledged {
        let order_id = order["id"].as_i64().expect("id");
        app.wait_for_status(order_id, "confirmed", token, SETTLE).await;
    }
    app.assert_settled(SETTLE).await;
}
}
