//! Money at its edges: sums in the dashboard and reports are exact far
//! past 2^63 minor units (128-bit), a client can pin the total it showed
//! (409 with the current total when prices moved), and a cart holds one
//! currency (422 on a mixed add, as checkout refuses mixed orders).

use kassa_common::domain::money::MAX_AMOUNT_CENTS;
use kassa_common::domain::order::{MAX_ORDER_LINES, MAX_QUANTITY};
use kassa_tests::app::{TestApp, id};
use serde_json::json;

kassa_tests::black_box! {
/// The largest order validation allows is 100 lines × 1,000 units × 10^12
/// minor units = 10^17; a hundred of them pass 2^63 ≈ 9.2 × 10^18. The
/// dashboard and the report add them up exactly.
#[tokio::test]
async fn revenue_sums_stay_exact_past_the_64_bit_limit() {
    let app = TestApp::spawn().await;
    let (ana_id, _) = app.customer("ana").await;
    let (_, admin) = app.admin("root").await;
    let largest_order = i128::from(MAX_AMOUNT_CENTS) * i128::from(MAX_QUANTITY) * MAX_ORDER_LINES as i128;
    assert!(i64::try_from(largest_order).is_ok(), "one order's total still fits a column");
    let orders = 100_i64;
    let db = app.db().await;
    let now = kassa_common::db::now_ms();
    for _ in 0..orders {
        sqlx::query(
            "insert into orders (user_id, status, total_cents, currency, payment_method, created_at, updated_at)
             values ($1, 'confirmed', $2, 'USD', 'pm_card_visa', $3, $3)",
        )
        .bind(ana_id)
        .bind(i64::try_from(largest_order).expect("fits"))
        .bind(now)
        .execute(db.pool())
        .await
        .expect("order");
    }
    db.close().await;
    let expected = largest_order * i128::from(orders);
    assert!(expected > i128::from(i64::MAX));
    let dashboard = app.get("/admin/dashboard", Some(&admin)).await.expect(200);
    // serde_json reads a number past i64 as u64 when it fits, else as a float.
    assert_eq!(dashboard["revenue_cents"].as_u64().map(i128::from), Some(expected), "{}", dashboard["revenue_cents"]);
    assert_eq!(dashboard["revenue_today_cents"].as_u64().map(i128::from), Some(expected));
    assert_eq!(dashboard["revenue_by_currency"]["USD"].as_u64().map(i128::from), Some(expected));
    let report = app.get("/admin/reports", Some(&admin)).await.expect(200);
    assert_eq!(report["totals"]["sales_cents"].as_u64().map(i128::from), Some(expected));
    assert_eq!(report["totals"]["average_order_value_cents"].as_i64().map(i128::from), Some(largest_order));
    app.get("/admin/reports?format=csv", Some(&admin)).await.expect(200);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn an_expected_total_that_no_longer_holds_is_refused_with_the_current_one() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let (ana_id, ana) = app.customer("ana").await;
    let lamp = app.product(&admin, "Lamp", 2500, 10, "home").await;
    let order = |expected: i64| json!({"items": [{"product_id": lamp["id"], "quantity": 2}], "expected_total_cents": expected});
    app.put(&format!("/products/{}", id(&lamp)), Some(&admin), &json!({"price_cents": 2600})).await.expect(200);
    let refused = app.post("/orders/", Some(&ana), &order(5000)).await.expect_problem(409);
    assert_eq!((refused["expected_total_cents"].as_i64(), refused["current_total_cents"].as_i64()), (Some(5000), Some(5200)));
    assert_eq!(refused["currency"], "USD");
    assert_eq!(app.stock(id(&lamp)).await, 10, "nothing was ordered");
    app.post("/orders/", Some(&ana), &order(5200)).await.expect(202);

    app.post("/cart/", Some(&ana), &json!({"product_id": lamp["id"], "quantity": 1})).await.expect(200);
    let checkout = format!("/cart/{ana_id}/checkout");
    app.post(&checkout, Some(&ana), &json!({"expected_total_cents": 2500})).await.expect_problem(409);
    let cart = app.get(&format!("/cart/{ana_id}"), Some(&ana)).await.expect(200);
    assert_eq!(cart["items"].as_array().map(Vec::len), Some(1), "a refused checkout keeps the cart");
    app.post(&checkout, Some(&ana), &json!({"expected_total_cents": 2600})).await.expect(202);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn a_cart_holds_one_currency() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let (ana_id, ana) = app.customer("ana").await;
    let lamp = app.product(&admin, "Lamp", 2500, 10, "home").await;
    let body = json!({"name": "Tasse", "price_cents": 900, "stock": 10, "category": "home", "currency": "EUR"});
    let cup = app.post("/products/", Some(&admin), &body).await.expect(201);
    app.post("/cart/", Some(&ana), &json!({"product_id": lamp["id"], "quantity": 1})).await.expect(200);
    let refused = app.post("/cart/", Some(&ana), &json!({"product_id": cup["id"], "quantity": 1})).await.expect_problem(422);
    assert!(refused.to_string().contains("one currency"), "{refused}");
    let cart = app.get(&format!("/cart/{ana_id}"), Some(&ana)).await.expect(200);
    assert_eq!(cart["totals_by_currency"], json!({"USD": 2500}));
    assert_eq!((cart["total_cents"].as_i64(), cart["currency"].as_str()), (Some(2500), Some("USD")));
    let mixed = json!({"items": [{"product_id": lamp["id"], "quantity": 1}, {"product_id": cup["id"], "quantity": 1}]});
    app.post("/orders/", Some(&ana), &mixed).await.expect_problem(422);
}
}
