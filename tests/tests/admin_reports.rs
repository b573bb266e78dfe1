//! Sales reports: figures per period, top products, cancellations and lead
//! times, the same as CSV, and 422 for bad dates or ranges.

use std::time::Duration;

use kassa_tests::app::{TestApp, id};
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(30);

/// Today's UTC date, as the API sees it (the last period of the default report).
async fn today(app: &TestApp, admin: &str) -> String {
    let report = app.get("/admin/reports", Some(admin)).await.expect(200);
    let periods = report["periods"].as_array().expect("periods");
    assert_eq!(periods.len(), 30, "the default range is the last 30 days");
    periods.last().and_then(|p| p["period"].as_str()).expect("period").to_owned()
}

kassa_tests::black_box! {
#[tokio::test]
async fn reports_give_sales_top_products_cancellations_and_lead_times_as_json_and_csv() {
    let app = TestApp::spawn().await;
    let _worker = app.spawn_worker("w1", &[]);
    let (_, admin) = app.admin("root").await;
    let (_, ana) = app.customer("ana").await;
    let lamp = app.product(&admin, "Desk lamp", 2500, 10, "home").await;
    let mouse = app.product(&admin, "Mouse", 1000, 10, "electronics").await;
    let order = |items: Value, payment_method: &str| json!({"items": items, "payment_method": payment_method});
    let lines = |product: &Value, quantity: i64| json!([{"product_id": id(product), "quantity": quantity}]);
    let placed = [
        order(lines(&lamp, 1), "pm_card_visa"),
        order(lines(&mouse, 3), "pm_card_visa"),
        order(lines(&lamp, 2), "pm_card_chargeDeclined"),
    ];
    let mut order_ids = Vec::new();
    for body in &placed {
        order_ids.push(id(&app.post("/orders/", Some(&ana), body).await.expect(202)));
    }
    app.wait_for_status(order_ids[0], "confirmed", &ana, SETTLE).await;
    app.wait_for_status(order_ids[1], "confirmed", &ana, SETTLE).await;
    app.wait_for_status(order_ids[2], "cancelled", &ana, SETTLE).await;
    app.assert_settled(SETTLE).await;

    let today = today(&app, &admin).await;
    let report =
        app.get(&format!("/admin/reports?from={today}&to={today}&group_by=day"), Some(&admin)).await.expect(200);
    assert_eq!(report["group_by"], "day");
    let periods = report["periods"].as_array().expect("periods");
    assert_eq!(periods.len(), 1, "{report:#}");
    let day = &periods[0];
    assert_eq!(day["period"], today.as_str());
    assert_eq!((day["orders"].as_i64(), day["paid_orders"].as_i64()), (Some(3), Some(2)));
    assert_eq!(day["cancelled_orders"], 1);
    assert_eq!(day["sales_cents"], 2500 + 3000);
    assert_eq!(day["average_order_value_cents"], 2750);
    assert_eq!(report["totals"]["sales_cents"], 5500);
    let top = |list: &str| -> Vec<(i64, i64, i64)> {
        report[list]
            .as_array()
            .expect("top list")
            .iter()
            .map(|p| {
                (
                    p["product_id"].as_i64().expect("id"),
                    p["units"].as_i64().expect("units"),
                    p["revenue_cents"].as_i64().expect("revenue"),
                )
            })
            .collect()
    };
    assert_eq!(top("top_products_by_units"), [(id(&mouse), 3, 3000), (id(&lamp), 1, 2500)], "paid orders only");
    assert_eq!(top("top_products_by_revenue"), [(id(&mouse), 3, 3000), (id(&lamp), 1, 2500)]);
    assert_eq!(report["cancellations_by_reason"], json!({"payment_declined": 1}));
    let to_confirmed = &report["pending_to_confirmed"];
    assert_eq!(to_confirmed["orders"], 2, "{to_confirmed:#}");
    assert!(to_confirmed["p50_seconds"].as_f64().expect("p50") >= 0.0);
    assert!(to_confirmed["p95_seconds"].as_f64().expect("p95") >= to_confirmed["p50_seconds"].as_f64().expect("p50"));
    assert_eq!(report["confirmed_to_delivered"], json!({"orders": 0, "p50_seconds": null, "p95_seconds": null}));

    let monthly = app.get(&format!("/admin/reports?from={today}&to={today}&group_by=month"), Some(&admin)).await;
    assert_eq!(monthly.expect(200)["periods"][0]["period"], &today[..7]);

    let url = format!("{}/admin/reports?from={today}&to={today}", app.base_url);
    let by_accept = app.client.get(&url).bearer_auth(&admin).header("accept", "text/csv").send().await.expect("sent");
    assert!(by_accept.headers()["content-type"].to_str().expect("type").starts_with("text/csv"));
    let csv = by_accept.text().await.expect("csv");
    let by_param = app.client.get(format!("{url}&format=csv")).bearer_auth(&admin).send().await.expect("sent");
    assert_eq!(by_param.text().await.expect("csv"), csv, "?format=csv is the same as Accept: text/csv");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "period,start,end,orders,paid_orders,cancelled_orders,sales_cents,average_order_value_cents");
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows[1].starts_with(&format!("{today},{today}T00:00:00.000Z,")), "{csv}");
    assert!(rows[1].ends_with(",3,2,1,5500,2750"), "{csv}");
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn bad_dates_reversed_ranges_and_ranges_over_five_years_are_422() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    for (query, field) in [
        ("from=2025-13-01&to=2025-12-31", "from"),
        ("from=2025-01-01&to=next%20tuesday", "to"),
        ("from=2025-02-01&to=2025-01-31", "from"),
        ("from=2015-01-01&to=2025-01-01", "to"),
    ] {
        let problem = app.get(&format!("/admin/reports?{query}"), Some(&admin)).await.expect_problem(422);
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }
    app.get("/admin/reports?group_by=year", Some(&admin)).await.expect_problem(422);
    app.get("/admin/reports?format=xml", Some(&admin)).await.expect_problem(422);
    let weekly =
        app.get("/admin/reports?from=2025-11-26T00:00:00Z&to=2025-12-08&group_by=week", Some(&admin)).await.expect(200);
    let labels: Vec<&str> =
        weekly["periods"].as_array().expect("periods").iter().map(|p| p["period"].as_str().expect("label")).collect();
    assert_eq!(labels, ["2025-W48", "2025-W49", "2025-W50"], "ISO weeks, empty ones included");
    assert_eq!(weekly["totals"]["orders"], 0);
}
}
