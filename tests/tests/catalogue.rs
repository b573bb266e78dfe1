//! The catalogue: the seed's flow, search relevance and filters, admin writes
//! and every way a request can be wrong.

use kassa_tests::app::TestApp;
use reqwest::Method;
use serde_json::{Value, json};

fn names(page: &Value) -> Vec<String> {
    page["items"].as_array().expect("items").iter().map(|p| p["name"].as_str().expect("name").to_owned()).collect()
}

kassa_tests::black_box! {
#[tokio::test]
async fn seed_flow_admin_adds_products_and_a_customer_finds_them() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let (_, customer) = app.customer("ana").await;
    let lamp = app.product(&admin, "Desk lamp", 2500, 10, "home").await;
    app.product(&admin, "Wireless mouse", 1999, 5, "electronics").await;
    assert_eq!(lamp["currency"], "USD");
    assert_eq!(lamp["price_cents"], 2500);
    let page = app.get("/products/?q=lamp", Some(&customer)).await.expect(200);
    assert_eq!(names(&page), ["Desk lamp"]);
    assert_eq!(page["total"], 1);
    let one = app.get(&format!("/products/{}", lamp["id"]), None).await.expect(200);
    assert_eq!(one["name"], "Desk lamp");
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn search_ranks_name_matches_first_and_combines_with_filters() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let body = |name: &str, description: &str, price: i64, stock: i64, category: &str| json!({"name": name, "description": description, "price_cents": price, "stock": stock, "category": category});
    for product in [
        body("Desk", "Solid oak, fits a lamp", 30000, 2, "furniture"),
        body("Lamp", "Warm light", 4000, 0, "lighting"),
        body("Lamp shade", "Linen", 1500, 7, "lighting"),
        body("Chair", "Comfortable", 9000, 3, "furniture"),
    ] {
        app.post("/products/", Some(&admin), &product).await.expect(201);
    }
    let ranked = app.get("/products/?q=lamp", None).await.expect(200);
    let ranked = names(&ranked);
    assert_eq!(ranked.len(), 3);
    assert_eq!(ranked.last().map(String::as_str), Some("Desk"), "description match ranks last: {ranked:?}");
    let prefix = app.get("/products/?q=sha", None).await.expect(200);
    assert_eq!(names(&prefix), ["Lamp shade"]);
    let filtered = app.get("/products/?q=lamp&category=lighting&in_stock=true", None).await.expect(200);
    assert_eq!(names(&filtered), ["Lamp shade"]);
    let priced =
        app.get("/products/?min_price_cents=4000&max_price_cents=30000&sort=price_desc", None).await.expect(200);
    assert_eq!(names(&priced), ["Desk", "Chair", "Lamp"]);
    let cheap_first = app.get("/products/?sort=price_asc&limit=2", None).await.expect(200);
    assert_eq!(names(&cheap_first), ["Lamp shade", "Lamp"]);
    assert_eq!(cheap_first["total"], 4);
    let second_page = app.get("/products/?sort=price_asc&limit=2&offset=2", None).await.expect(200);
    assert_eq!(names(&second_page), ["Chair", "Desk"]);
    let by_name = app.get("/products/?sort=name", None).await.expect(200);
    assert_eq!(names(&by_name), ["Chair", "Desk", "Lamp", "Lamp shade"]);
    let sold_out = app.get("/products/?in_stock=false", None).await.expect(200);
    assert_eq!(names(&sold_out), ["Lamp"]);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn fts5_syntax_in_the_query_is_just_text() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    app.product(&admin, "Lamp", 100, 1, "home").await;
    for q in ["\"", "lamp\"", "NEAR(lamp", "lamp AND", "*", "lamp OR -", "name:lamp", "(((", "^lamp", "lamp*"] {
        let encoded: String = url_encode(q);
        let reply = app.get(&format!("/products/?q={encoded}"), None).await;
        assert_eq!(reply.status, 200, "q={q:?}: {}", reply.body);
    }
}
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

kassa_tests::black_box! {
#[tokio::test]
async fn limits_are_capped_and_bad_parameters_are_422() {
    let app = TestApp::spawn().await;
    let page = app.get("/products/?limit=100000", None).await.expect(200);
    assert_eq!(page["limit"], 100);
    assert_eq!(app.get("/products/", None).await.expect(200)["limit"], 20);
    for bad in [
        "limit=0",
        "limit=abc",
        "offset=-1",
        "min_price_cents=-5",
        "min_price_cents=10&max_price_cents=5",
        "sort=cheapest",
        "in_stock=maybe",
    ] {
        app.get(&format!("/products/?{bad}"), None).await.expect_problem(422);
    }
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn admins_update_and_delete_products_and_deleted_ones_disappear() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let lamp = app.product(&admin, "Lamp", 100, 5, "home").await;
    let path = format!("/products/{}", lamp["id"]);
    let updated = app.put(&path, Some(&admin), &json!({"price_cents": 150, "stock": 7})).await.expect(200);
    assert_eq!(
        (updated["price_cents"].clone(), updated["stock"].clone(), updated["name"].clone()),
        (json!(150), json!(7), json!("Lamp"))
    );
    app.put(&path, Some(&admin), &json!({"price_cents": -1})).await.expect_problem(422);
    app.put(&path, Some(&admin), &json!({"price_cents": 1.5})).await.expect_problem(422);
    app.put("/products/999999", Some(&admin), &json!({"stock": 1})).await.expect_problem(404);
    app.delete(&path, Some(&admin)).await.expect(204);
    app.get(&path, None).await.expect_problem(404);
    assert_eq!(app.get("/products/?q=lamp", None).await.expect(200)["total"], 0);
    app.delete(&path, Some(&admin)).await.expect_problem(404);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn invalid_products_are_refused_with_every_field_named() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let problem = app
        .post("/products/", Some(&admin), &json!({"name": "", "price_cents": -1, "stock": -1, "currency": "dollars"}))
        .await
        .expect_problem(422);
    let fields: Vec<&str> =
        problem["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, ["name", "price_cents", "currency", "stock", "category"]);
    let sku = json!({"name": "A", "price_cents": 1, "stock": 1, "category": "x", "sku": "SKU-1"});
    app.post("/products/", Some(&admin), &sku).await.expect(201);
    app.post("/products/", Some(&admin), &sku).await.expect_problem(409);
    assert_eq!(app.get("/products/", None).await.expect(200)["total"], 1);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn malformed_wrongly_typed_and_oversized_bodies_are_4xx_problems() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let url = format!("{}/products/", app.base_url);
    let send = |body: Vec<u8>, content_type: &'static str| {
        app.client.post(url.clone()).bearer_auth(&admin).header("content-type", content_type).body(body).send()
    };
    TestApp::reply(send(b"{\"name\": ".to_vec(), "application/json").await.expect("sent")).await.expect_problem(400);
    TestApp::reply(send(b"name=x".to_vec(), "text/plain").await.expect("sent")).await.expect_problem(415);
    TestApp::reply(send(b"[1,2]".to_vec(), "application/json").await.expect("sent")).await.expect_problem(422);
    app.get("/products/not-a-number", None).await.expect_problem(404);
    app.get("/no/such/route", None).await.expect_problem(404);
    let trace = app.request(Method::from_bytes(b"TRACE").expect("method"), "/products/", None, None).await;
    trace.expect_problem(405);
    // Last: the server answers 413 without reading the body and closes the
    // connection, which a pooled client connection would trip over.
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(100 * 1024)).into_bytes();
    TestApp::reply(send(huge, "application/json").await.expect("sent")).await.expect_problem(413);
}
}
