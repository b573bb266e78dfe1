//! Cart, checkout and the reserve-stock → charge → confirm pipeline, with the
//! real `kassa-api` and `kassa-worker` binaries.

use std::time::Duration;

use kassa_tests::app::{TestApp, id};
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(30);

kassa_tests::black_box! {
#[tokio::test]
async fn seed_flow_cart_checkout_reaches_confirmed_and_the_admin_sees_it() {
    let app = TestApp::spawn().await;
    let _worker = app.spawn_worker("w1", &[]);
    let (_, admin) = app.admin("root").await;
    let (user_id, token) = app.customer("ana").await;
    let lamp = app.product(&admin, "Desk lamp", 2500, 10, "home").await;
    let mouse = app.product(&admin, "Mouse", 1999, 5, "electronics").await;
    app.post("/cart/", Some(&token), &json!({"product_id": id(&lamp), "quantity": 2})).await.expect(200);
    let cart = app.post("/cart/", Some(&token), &json!({"product_id": id(&mouse), "quantity": 1})).await.expect(200);
    assert_eq!(cart["total_cents"], 2 * 2500 + 1999);
    assert_eq!(cart["items"][0]["line_total_cents"], 5000);
    assert_eq!(cart["items"][0]["available"], 10);

    let accepted = app.post(&format!("/cart/{user_id}/checkout"), Some(&token), &json!({})).await;
    let location = accepted.header("location").expect("Location").to_owned();
    let order = accepted.expect(202);
    assert_eq!(order["status"], "pending");
    assert_eq!(order["total_cents"], 6999);
    assert_eq!(location, format!("/orders/{}", id(&order)));
    assert_eq!(app.get(&format!("/cart/{user_id}"), Some(&token)).await.expect(200)["items"], json!([]));

    let confirmed = app.wait_for_status(id(&order), "confirmed", &token, SETTLE).await;
    assert_eq!(confirmed["payment"]["status"], "captured");
    assert_eq!(confirmed["payment"]["amount_cents"], 6999);
    let moves: Vec<(Value, Value)> = confirmed["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| (h["from"].clone(), h["to"].clone()))
        .collect();
    assert_eq!(moves, [(Value::Null, json!("pending")), (json!("pending"), json!("confirmed"))]);
    let seen_by_admin = app.get(&location, Some(&admin)).await.expect(200);
    assert_eq!(seen_by_admin["status"], "confirmed");
    let lamp_now = app.get(&format!("/products/{}", id(&lamp)), None).await.expect(200);
    assert_eq!(lamp_now["stock"], 8);
    let mine = app.get("/orders/my-orders", Some(&token)).await.expect(200);
    assert_eq!(mine["total"], 1);
    app.assert_settled(SETTLE).await;
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn carts_check_stock_quantities_and_ownership() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let (ana_id, ana) = app.customer("ana").await;
    let (bob_id, bob) = app.customer("bob").await;
    let lamp = app.product(&admin, "Lamp", 100, 3, "home").await;
    let line = |quantity: i64| json!({"product_id": id(&lamp), "quantity": quantity});
    app.post("/cart/", Some(&ana), &line(2)).await.expect(200);
    let short = app.post("/cart/", Some(&ana), &line(2)).await.expect_problem(409);
    assert_eq!(short["available"], 3);
    app.post("/cart/", Some(&ana), &line(0)).await.expect_problem(422);
    app.post("/cart/", Some(&ana), &line(1001)).await.expect_problem(422);
    app.post("/cart/", Some(&ana), &json!({"product_id": 999_999, "quantity": 1})).await.expect_problem(404);
    app.post("/cart/", None, &line(1)).await.expect_problem(401);

    app.get(&format!("/cart/{ana_id}"), Some(&bob)).await.expect_problem(403);
    app.delete(&format!("/cart/{ana_id}/{}", id(&lamp)), Some(&bob)).await.expect_problem(403);
    app.post(&format!("/cart/{ana_id}/checkout"), Some(&bob), &json!({})).await.expect_problem(403);
    assert_eq!(app.get(&format!("/cart/{ana_id}"), Some(&admin)).await.expect(200)["items"][0]["quantity"], 2);

    app.post(&format!("/cart/{bob_id}/checkout"), Some(&bob), &json!({})).await.expect_problem(409);
    app.delete(&format!("/cart/{ana_id}/{}", id(&lamp)), Some(&ana)).await.expect(204);
    app.delete(&format!("/cart/{ana_id}/{}", id(&lamp)), Some(&ana)).await.expect_problem(404);
    app.post(&format!("/cart/{ana_id}/checkout"), Some(&ana), &json!({})).await.expect_problem(409);

    // Deleting a product removes it from carts.
    app.post("/cart/", Some(&ana), &line(1)).await.expect(200);
    app.delete(&format!("/products/{}", id(&lamp)), Some(&admin)).await.expect(204);
    assert_eq!(app.get(&format!("/cart/{ana_id}"), Some(&ana)).await.expect(200)["items"], json!([]));
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn direct_orders_merge_lines_validate_and_write_nothing_when_refused() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let (ana_id, ana) = app.customer("ana").await;
    let (bob_id, _bob) = app.customer("bob").await;
    let lamp = app.product(&admin, "Lamp", 150, 10, "home").await;
    let lines = json!({"items": [{"product_id": id(&lamp), "quantity": 2}, {"product_id": id(&lamp), "quantity": 3}],
                       "status": "delivered", "total_cents": 1});
    let order = app.post("/orders/", Some(&ana), &lines).await.expect(202);
    assert_eq!(order["items"].as_array().expect("items").len(), 1);
    assert_eq!(order["items"][0]["quantity"], 5);
    assert_eq!(order["total_cents"], 750, "a client cannot set the total");
    assert_eq!(order["status"], "pending", "a client cannot set the status");
    assert_eq!(order["user_id"], ana_id);

    app.post("/orders/", Some(&ana), &json!({"items": []})).await.expect_problem(422);
    app.post("/orders/", Some(&ana), &json!({"items": [{"product_id": id(&lamp), "quantity": 0}]}))
        .await
        .expect_problem(422);
    app.post("/orders/", Some(&ana), &json!({"items": [{"product_id": id(&lamp), "quantity": -2}]}))
        .await
        .expect_problem(422);
    app.post("/orders/", Some(&ana), &json!({"items": [{"product_id": 424_242, "quantity": 1}]}))
        .await
        .expect_problem(404);
    let short = app.post("/orders/", Some(&ana), &json!({"items": [{"product_id": id(&lamp), "quantity": 11}]})).await;
    assert_eq!(short.expect_problem(409)["available"], 10);
    let for_bob = json!({"items": [{"product_id": id(&lamp), "quantity": 1}], "user_id": bob_id});
    app.post("/orders/", Some(&ana), &for_bob).await.expect_problem(403);
    assert_eq!(app.get("/orders/my-orders", Some(&ana)).await.expect(200)["total"], 1, "refused orders wrote nothing");
    let for_nobody = json!({"items": [{"product_id": id(&lamp), "quantity": 1}], "user_id": 478_353_980_677_i64});
    app.post("/orders/", Some(&admin), &for_nobody).await.expect_problem(404);
    let by_admin = app.post("/orders/", Some(&admin), &for_bob).await.expect(202);
    assert_eq!(by_admin["user_id"], bob_id);
    app.get(&format!("/orders/{}", id(&by_admin)), Some(&ana)).await.expect_problem(404);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn declined_cards_cancel_and_restore_stock_and_flaky_cards_confirm_after_retries() {
    let app = TestApp::spawn().await;
    let _worker = app.spawn_worker("w1", &[]);
    let (_, admin) = app.admin("root").await;
    let (_, ana) = app.customer("ana").await;
    let lamp = app.product(&admin, "Lamp", 100, 10, "home").await;
    let order = |method: &str| json!({"items": [{"product_id": id(&lamp), "quantity": 4}], "payment_method": method});
    let declined = app.post("/orders/", Some(&ana), &order("pm_card_chargeDeclined")).await.expect(202);
    let flaky = app.post("/orders/", Some(&ana), &order("pm_card_flaky")).await.expect(202);
    let cancelled = app.wait_for_status(id(&declined), "cancelled", &ana, SETTLE).await;
    assert_eq!(cancelled["cancel_reason"], "payment_declined");
    assert_eq!(cancelled["payment"]["status"], "declined");
    let confirmed = app.wait_for_status(id(&flaky), "confirmed", &ana, SETTLE).await;
    assert_eq!(confirmed["payment"]["status"], "captured");
    assert_eq!(app.get(&format!("/products/{}", id(&lamp)), None).await.expect(200)["stock"], 6);
    app.assert_settled(SETTLE).await;
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn an_order_the_stock_cannot_cover_is_cancelled_out_of_stock() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let (_, ana) = app.customer("ana").await;
    let lamp = app.product(&admin, "Lamp", 100, 5, "home").await;
    let line = json!({"items": [{"product_id": id(&lamp), "quantity": 4}]});
    // Both are accepted while no worker runs: each fits the visible stock.
    let first = app.post("/orders/", Some(&ana), &line).await.expect(202);
    let second = app.post("/orders/", Some(&ana), &line).await.expect(202);
    let _worker = app.spawn_worker("w1", &[]);
    app.assert_settled(SETTLE).await;
    let first = app.get(&format!("/orders/{}", id(&first)), Some(&ana)).await.expect(200);
    let second = app.get(&format!("/orders/{}", id(&second)), Some(&ana)).await.expect(200);
    // Whichever reservation ran first won; the other was cancelled.
    let (confirmed, cancelled) = if first["status"] == "confirmed" { (first, second) } else { (second, first) };
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["cancel_reason"], "out_of_stock");
    assert!(cancelled["payment"].is_null(), "nothing was charged");
    assert_eq!(app.get(&format!("/products/{}", id(&lamp)), None).await.expect(200)["stock"], 1);
    app.assert_settled(SETTLE).await;
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn checkout_replayed_with_the_same_idempotency_key_creates_one_order() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let (ana_id, ana) = app.customer("ana").await;
    let lamp = app.product(&admin, "Lamp", 100, 10, "home").await;
    let body = json!({"items": [{"product_id": id(&lamp), "quantity": 1}]});
    let send = |key: &'static str, body: Value| {
        let request =
            app.client.post(format!("{}/orders/", app.base_url)).bearer_auth(&ana).header("Idempotency-Key", key);
        async move { TestApp::reply(request.json(&body).send().await.expect("sent")).await }
    };
    let first = send("key-1", body.clone()).await;
    let replay = send("key-1", body.clone()).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.header("location"), replay.header("location"));
    assert_eq!(first.expect(202), replay.expect(202));
    let other = json!({"items": [{"product_id": id(&lamp), "quantity": 2}]});
    send("key-1", other).await.expect_problem(422);
    assert_eq!(app.get("/orders/my-orders", Some(&ana)).await.expect(200)["total"], 1);

    // Checkout: a retry after the cart was cleared still gets the first answer.
    app.post("/cart/", Some(&ana), &json!({"product_id": id(&lamp), "quantity": 1})).await.expect(200);
    let checkout = |key: &'static str| {
        let request = app
            .client
            .post(format!("{}/cart/{ana_id}/checkout", app.base_url))
            .bearer_auth(&ana)
            .header("Idempotency-Key", key);
        async move { TestApp::reply(request.send().await.expect("sent")).await }
    };
    let first = checkout("co-1").await.expect(202);
    let again = checkout("co-1").await.expect(202);
    assert_eq!(first["id"], again["id"]);
    assert_eq!(app.get("/orders/my-orders", Some(&ana)).await.expect(200)["total"], 2);

    // Concurrent retries: exactly one order, the rest replay it or are told it is in flight.
    let racers: Vec<_> = (0..8).map(|_| send("race", body.clone())).collect();
    let replies = futures::future::join_all(racers).await;
    let mut order_ids = std::collections::BTreeSet::new();
    for reply in replies {
        match reply.status.as_u16() {
            202 => {
                order_ids.insert(reply.body["id"].as_i64().expect("id"));
            }
            409 => {}
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    assert_eq!(order_ids.len(), 1);
    assert_eq!(app.get("/orders/my-orders", Some(&ana)).await.expect(200)["total"], 3);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn the_api_with_an_embedded_worker_runs_the_whole_pipeline() {
    let app = TestApp::spawn_with(kassa_tests::app::AppOptions::default().env("KASSA_WITH_WORKER", "1")).await;
    let (_, admin) = app.admin("root").await;
    let (_, ana) = app.customer("ana").await;
    let lamp = app.product(&admin, "Lamp", 100, 3, "home").await;
    let order = app
        .post("/orders/", Some(&ana), &json!({"items": [{"product_id": id(&lamp), "quantity": 1}]}))
        .await
        .expect(202);
    app.wait_for_status(id(&order), "confirmed", &ana, SETTLE).await;
    app.assert_settled(SETTLE).await;
    assert!(app.data_dir.join("outbox").read_dir().expect("outbox").next().is_some(), "e-mails went to the outbox");
}
}
