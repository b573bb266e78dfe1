//! The stock audit: a shop whose units all went through recorded paths
//! balances (admin restocks are adjustments); units lost or created behind
//! Kassa's back are reported, by the API and as a gauge on both endpoints.

use std::time::Duration;

use kassa_tests::admin::{assert_stock_audit_clean, scrape_api, scrape_worker, worker_metrics_url};
use kassa_tests::app::{TestApp, id};
use kassa_tests::prometheus;
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(30);

kassa_tests::black_box! {
#[tokio::test]
async fn orders_cancellations_and_admin_restocks_keep_the_audit_clean() {
    let app = TestApp::spawn().await;
    let _worker = app.spawn_worker("w1", &[]);
    let (_, admin) = app.admin("root").await;
    let (_, ana) = app.customer("ana").await;
    let lamp = app.product(&admin, "Desk lamp", 2500, 5, "home").await;
    let paid = app.post("/orders/", Some(&ana), &json!({"items": [{"product_id": id(&lamp), "quantity": 2}]})).await;
    let declined = app
        .post(
            "/orders/",
            Some(&ana),
            &json!({"items": [{"product_id": id(&lamp), "quantity": 1}], "payment_method": "pm_card_chargeDeclined"}),
        )
        .await;
    app.wait_for_status(id(&paid.expect(202)), "confirmed", &ana, SETTLE).await;
    app.wait_for_status(id(&declined.expect(202)), "cancelled", &ana, SETTLE).await;
    app.put(&format!("/products/{}", id(&lamp)), Some(&admin), &json!({"stock": 20})).await.expect(200);
    app.put(&format!("/products/{}", id(&lamp)), Some(&admin), &json!({"stock": 7})).await.expect(200);

    let audit = assert_stock_audit_clean(&app).await;
    assert_eq!(audit["products_checked"], 1);
    let adjustments: i64 = sqlx::query_scalar("select cast(coalesce(sum(delta), 0) as bigint) from stock_adjustments")
        .fetch_one(app.db().await.pool())
        .await
        .expect("adjustments");
    assert_eq!(adjustments, 7 - 3, "the restocks were recorded as adjustments");
    app.assert_settled(SETTLE).await;
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn units_changed_behind_kassas_back_are_reported_and_counted_in_the_gauge() {
    let app = TestApp::spawn().await;
    let mut worker = app.spawn_worker("w1", &[("KASSA_WORKER_METRICS_BIND", "127.0.0.1:0")]);
    let worker_url = worker_metrics_url(&mut worker);
    let (_, admin) = app.admin("root").await;
    let lamp = app.product(&admin, "Desk lamp", 2500, 5, "home").await;
    app.product(&admin, "Mouse", 1000, 5, "electronics").await;
    assert_stock_audit_clean(&app).await;

    // A unit vanishes without an order or an adjustment.
    sqlx::query("update products set stock = stock - 1 where id = $1")
        .bind(id(&lamp))
        .execute(app.db().await.pool())
        .await
        .expect("tampered");
    let audit = app.get("/admin/stock-audit", Some(&admin)).await.expect(200);
    assert_eq!(audit["ok"], false);
    assert_eq!(audit["products_checked"], 2);
    assert_eq!(
        audit["violations"],
        json!([{"product_id": id(&lamp), "name": "Desk lamp", "sku": null, "deleted": false, "initial_stock": 5,
                "adjustments": 0, "stock": 4, "held_by_orders": 0, "discrepancy": 1}])
    );

    let api = prometheus::parse(&scrape_api(&app, None).await).expect("valid API metrics");
    assert_eq!(api.sum("kassa_stock_audit_violations", &[]), 1.0, "sampled at scrape time");
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let text = scrape_worker(&app.client, &worker_url).await;
        let scrape = prometheus::parse(&text).expect("valid worker metrics");
        if scrape.has("kassa_stock_audit_violations") && scrape.sum("kassa_stock_audit_violations", &[]) == 1.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the worker never sampled the violation:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
}
