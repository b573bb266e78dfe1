//! Operations and documentation endpoints: health, readiness, metrics as
//! real Prometheus text, and an OpenAPI document that lists every route.

use std::collections::BTreeSet;

use kassa_tests::app::{AppOptions, TestApp};

kassa_tests::black_box! {
#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz", None).await.expect(200)["status"], "ok");
    assert_eq!(app.get("/readyz", None).await.expect(200)["status"], "ready");
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn the_openapi_document_lists_every_served_route_with_security() {
    let app = TestApp::spawn().await;
    let doc = app.get("/openapi.json", None).await.expect(200);
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().expect("path item").keys().map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    let expected: BTreeSet<String> = [
        "POST /auth/register",
        "POST /auth/register-admin",
        "POST /auth/login",
        "GET /auth/me",
        "GET /products/",
        "POST /products/",
        "GET /products/{id}",
        "PUT /products/{id}",
        "DELETE /products/{id}",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert!(expected.is_subset(&documented), "missing: {:?}", expected.difference(&documented).collect::<Vec<_>>());
    // Every documented route is served: none answers 404 "no route".
    for route in &documented {
        let (method, path) = route.split_once(' ').expect("method and path");
        let path = path.replace("{id}", "1").replace("{user_id}", "1").replace("{product_id}", "1");
        let reply = app.request(method.parse().expect("method"), &path, None, None).await;
        let unrouted = reply.status == 404 && reply.body["detail"].as_str().is_some_and(|d| d.starts_with("no route"));
        assert!(!unrouted, "{route} is documented but not served");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer_auth"]["scheme"], "bearer");
    assert_eq!(schemes["oauth2_password"]["flows"]["password"]["tokenUrl"], "/auth/login");
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn swagger_ui_is_served_from_the_binary_and_redoc_exists() {
    let app = TestApp::spawn().await;
    let docs = app.client.get(format!("{}/docs/", app.base_url)).send().await.expect("sent");
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.expect("html");
    assert!(html.contains("swagger"), "{html}");
    let script = app.client.get(format!("{}/docs/swagger-ui-bundle.js", app.base_url)).send().await.expect("sent");
    assert_eq!(script.status(), 200, "the UI's script is vendored, not fetched from a CDN");
    assert!(script.bytes().await.expect("js").len() > 100_000);
    let redoc = app.client.get(format!("{}/redoc", app.base_url)).send().await.expect("sent");
    assert_eq!(redoc.status(), 200);
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn metrics_are_prometheus_text_with_requests_by_route_template() {
    let app = TestApp::spawn().await;
    app.get("/products/", None).await.expect(200);
    app.get("/products/41", None).await.expect_problem(404);
    app.get("/products/42", None).await.expect_problem(404);
    let reply = app.client.get(format!("{}/metrics", app.base_url)).send().await.expect("sent");
    assert!(reply.headers()["content-type"].to_str().expect("type").starts_with("text/plain"));
    let text = reply.text().await.expect("text");
    let scrape = kassa_tests::prometheus::parse(&text).expect("valid Prometheus text");
    let requests = |route: &str, status: &str| {
        scrape.sum("kassa_http_requests_total", &[("method", "GET"), ("route", route), ("status", status)])
    };
    assert_eq!(requests("/products/{id}", "404"), 2.0, "{text}");
    assert_eq!(requests("/products/", "200"), 1.0, "{text}");
    assert_eq!(scrape.types["kassa_http_request_duration_seconds"], "histogram");
    assert!(scrape.has("kassa_http_request_duration_seconds_bucket"));
}
}

kassa_tests::black_box! {
#[tokio::test]
async fn metrics_can_require_a_token() {
    let app = TestApp::spawn_with(AppOptions::default().env("KASSA_METRICS_TOKEN", "scrape-me")).await;
    app.get("/metrics", None).await.expect_problem(401);
    app.get("/metrics", Some("wrong")).await.expect_problem(401);
    let ok = app.client.get(format!("{}/metrics", app.base_url)).bearer_auth("scrape-me").send().await.expect("sent");
    assert_eq!(ok.status(), 200);
}
}
