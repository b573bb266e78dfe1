//! The admin dashboard and who may see the operators' routes.

use std::time::Duration;

use kassa_tests::app::{AppOptions, TestApp, id};
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(30);

kassa_tests::black_box! {
#[tokio::test]
async fn operator_routes_refuse_customers_with_403_and_anonymous_callers_with_401() {
    let app = TestApp::spawn().await;
    let (_, customer) = app.customer("ana").await;
    let reads = ["/admin/dashboard", "/admin/reports", "/admin/jobs", "/admin/jobs/1", "/admin/stock-audit"];
    for path in reads {
        app.get(path, None).await.expect_problem(401);
        app.get(path, Some(&customer)).await.expect_problem(403);
    }
    for path in ["/admin/jobs/1/retry", "/admin/jobs/1/discard"] {
        app.post(path, None, &json!({"reason": "x"})).await.expect_problem(401);
        app.post(path, Some(&customer), &json!({"reason": "x"})).await.expect_problem(403);
    }
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn the_dashboard_counts_accounts_stock_orders_revenue_and_the_queue() {
    let app = TestApp::spawn().await;
    let _worker = app.spawn_worker("w1", &[]);
    let (_, admin) = app.admin("root").await;
    let (ana_id, ana) = app.customer("ana").await;
    let (_, _bob) = app.customer("bob").await;
    let lamp = app.product(&admin, "Desk lamp", 2500, 10, "home").await;
    let mouse = app.product(&admin, "Mouse", 1999, 3, "electronics").await;
    let cable = app.product(&admin, "Cable", 500, 5, "electronics").await;
    let deleted = app.product(&admin, "Old stock", 100, 1, "home").await;
    app.delete(&format!("/products/{}", id(&deleted)), Some(&admin)).await.expect(204);

    let paid = app
        .post("/orders/", Some(&ana), &json!({"items": [{"product_id": id(&lamp), "quantity": 2}]}))
        .await
        .expect(202);
    let declined = app
        .post(
            "/orders/",
            Some(&ana),
            &json!({"items": [{"product_id": id(&mouse), "quantity": 1}], "payment_method": "pm_card_chargeDeclined"}),
        )
        .await
        .expect(202);
    app.wait_for_status(id(&paid), "confirmed", &ana, SETTLE).await;
    app.wait_for_status(id(&declined), "cancelled", &ana, SETTLE).await;
    app.assert_settled(SETTLE).await;
    assert_eq!(ana_id, paid["user_id"].as_i64().expect("owner"));

    let dashboard = app.get("/admin/dashboard", Some(&admin)).await.expect(200);
    // root, the helper's stock auditor, ana and bob.
    assert_eq!((dashboard["users"].as_i64(), dashboard["customers"].as_i64()), (Some(4), Some(2)), "{dashboard:#}");
    assert_eq!(dashboard["admins"], 2);
    assert_eq!(dashboard["products"], 3, "deleted products are not counted");
    assert_eq!(dashboard["low_stock_threshold"], 5);
    let low: Vec<(i64, i64)> = dashboard["low_stock"]
        .as_array()
        .expect("low_stock")
        .iter()
        .map(|p| (p["id"].as_i64().expect("id"), p["stock"].as_i64().expect("stock")))
        .collect();
    assert_eq!(low, [(id(&mouse), 3), (id(&cable), 5)], "fewest units first; the declined order gave its unit back");
    assert_eq!(dashboard["low_stock_products"], 2);
    assert_eq!(dashboard["orders"], 2);
    assert_eq!(
        dashboard["orders_by_status"],
        json!({"pending": 0, "confirmed": 1, "shipped": 0, "delivered": 0, "cancelled": 1})
    );
    assert_eq!(dashboard["revenue_cents"], 5000, "only the paid order counts");
    assert_eq!(dashboard["revenue_by_currency"], json!({"USD": 5000}));
    assert_eq!(dashboard["orders_today"], 2);
    assert_eq!(dashboard["revenue_today_cents"], 5000);

    let queue = &dashboard["queue"];
    assert_eq!((queue["pending"].as_i64(), queue["retrying"].as_i64()), (Some(0), Some(0)), "{queue:#}");
    assert_eq!((queue["running"].as_i64(), queue["dead"].as_i64()), (Some(0), Some(0)));
    assert_eq!(queue["oldest_pending_age_seconds"], 0.0);
    let charge = queue["job_types"]
        .as_array()
        .expect("job_types")
        .iter()
        .find(|t| t["job_type"] == "charge")
        .expect("every registered job type is listed");
    assert_eq!(charge["succeeded_last_minute"], 2, "{charge:#}");
    assert!(queue["finished_last_minute"].as_i64().expect("finished") >= 6, "2 reserve + 2 charge + transitions");
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn the_low_stock_threshold_is_configurable() {
    let app = TestApp::spawn_with(AppOptions::default().env("KASSA_LOW_STOCK_THRESHOLD", "1")).await;
    let (_, admin) = app.admin("root").await;
    app.product(&admin, "Mouse", 1999, 3, "electronics").await;
    let last = app.product(&admin, "Last one", 100, 1, "home").await;
    let dashboard = app.get("/admin/dashboard", Some(&admin)).await.expect(200);
    assert_eq!(dashboard["low_stock_threshold"], 1);
    assert_eq!(dashboard["low_stock"], json!([{"id": id(&last), "name": "Last one", "sku": null, "stock": 1}]));
}
}
