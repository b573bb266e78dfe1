//! One test per item of the OWASP API Security Top 10 (2023), each failing
//! if its protection were removed, plus the JWT attacks.

use std::collections::BTreeSet;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use kassa_tests::app::{AppOptions, PASSWORD, TestApp, id};
use reqwest::Method;
use serde_json::{Value, json};

const JWT_SECRET: &str = "owasp-test-signing-key-0123456789abcdef";

async fn app_with_known_key() -> TestApp {
    TestApp::spawn_with(AppOptions::default().env("KASSA_JWT_SECRET", JWT_SECRET)).await
}

kassa_tests::black_box! {
/// API1 — Broken object level authorization: carts and orders of others.
#[tokio::test]
async fn api1_objects_of_other_users_are_out_of_reach() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let (ana_id, ana) = app.customer("ana").await;
    let (_, bob) = app.customer("bob").await;
    let lamp = app.product(&admin, "Lamp", 100, 5, "home").await;
    app.post("/cart/", Some(&ana), &json!({"product_id": id(&lamp), "quantity": 1})).await.expect(200);
    let order = app
        .post("/orders/", Some(&ana), &json!({"items": [{"product_id": id(&lamp), "quantity": 1}]}))
        .await
        .expect(202);
    app.get(&format!("/cart/{ana_id}"), Some(&bob)).await.expect_problem(403);
    app.delete(&format!("/cart/{ana_id}/{}", id(&lamp)), Some(&bob)).await.expect_problem(403);
    app.post(&format!("/cart/{ana_id}/checkout"), Some(&bob), &json!({})).await.expect_problem(403);
    app.get(&format!("/orders/{}", id(&order)), Some(&bob)).await.expect_problem(404);
    app.post(&format!("/orders/{}/cancel", id(&order)), Some(&bob), &json!({})).await.expect_problem(404);
    let bobs = app.get("/orders/my-orders", Some(&bob)).await.expect(200);
    assert_eq!(bobs["total"], 0);
    // The owner and admins still can.
    app.get(&format!("/orders/{}", id(&order)), Some(&ana)).await.expect(200);
    app.get(&format!("/orders/{}", id(&order)), Some(&admin)).await.expect(200);
}
}

kassa_tests::black_box! {
/// API2 — Broken authentication: throttled logins, uniform failures.
#[tokio::test]
async fn api2_logins_are_throttled_and_failures_say_nothing() {
    let options = AppOptions::default().env("KASSA_AUTH_RATE_PER_MIN", "2").env("KASSA_AUTH_BURST", "4");
    let app = TestApp::spawn_with(options).await;
    app.register("ana").await.expect(201);
    let wrong = app.post("/auth/login", None, &json!({"username": "ana", "password": "not the password"})).await;
    let unknown = app.post("/auth/login", None, &json!({"username": "nobody", "password": "not the password"})).await;
    assert_eq!((wrong.status.as_u16(), unknown.status.as_u16()), (401, 401));
    assert_eq!(wrong.body, unknown.body);
    let mut limited = false;
    for _ in 0..5 {
        let reply = app.post("/auth/login", None, &json!({"username": "ana", "password": "guess guess"})).await;
        if reply.status == 429 {
            assert!(reply.header("retry-after").is_some());
            limited = true;
            break;
        }
    }
    assert!(limited, "password guessing is throttled");
}
}

kassa_tests::black_box! {
/// API3 — Broken object property level authorization: mass assignment and
/// excessive data exposure.
#[tokio::test]
async fn api3_clients_cannot_set_protected_fields_or_see_hashes() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    let body = json!({"username": "mallory", "email": "m@example.com", "password": PASSWORD, "role": "admin", "id": 1, "password_hash": "x"});
    let user = app.post("/auth/register", None, &body).await.expect(201);
    assert_eq!(user["role"], "customer");
    let token = app.login("mallory").await;
    let lamp = app.product(&admin, "Lamp", 100, 5, "home").await;
    let order = app
        .post(
            "/orders/",
            Some(&token),
            &json!({"items": [{"product_id": id(&lamp), "quantity": 1}], "status": "delivered", "total_cents": 1, "id": 99}),
        )
        .await
        .expect(202);
    assert_eq!((order["status"].clone(), order["total_cents"].clone()), (json!("pending"), json!(100)));
    app.post("/products/", Some(&token), &json!({"name": "x", "price_cents": 1, "stock": 1, "category": "x"}))
        .await
        .expect_problem(403);
    for path in ["/auth/me", "/orders/my-orders", &format!("/orders/{}", id(&order))] {
        let text = app.get(path, Some(&token)).await.expect(200).to_string();
        assert!(!text.contains("password") && !text.contains("$argon2"), "{path} leaks: {text}");
    }
}
}

kassa_tests::black_box! {
/// API4 — Unrestricted resource consumption: body size, page size caps.
#[tokio::test]
async fn api4_bodies_and_pages_are_bounded() {
    let app = TestApp::spawn().await;
    let page = app.get("/products/?limit=1000000", None).await.expect(200);
    assert_eq!(page["limit"], 100);
    let (_, ana) = app.customer("ana").await;
    let mine = app.get("/orders/my-orders?limit=100000", Some(&ana)).await.expect(200);
    assert_eq!(mine["limit"], 100);
    let many_lines: Vec<Value> = (0..200).map(|i| json!({"product_id": i, "quantity": 1})).collect();
    app.post("/orders/", Some(&ana), &json!({"items": many_lines})).await.expect_problem(422);
    // Last: the 413 is answered without reading the body, and the server
    // closes that connection.
    let huge = json!({"username": "x".repeat(70 * 1024), "email": "a@b.co", "password": PASSWORD});
    app.post("/auth/register", None, &huge).await.expect_problem(413);
}
}

kassa_tests::black_box! {
/// API5 — Broken function level authorization: every admin route, every method.
#[tokio::test]
async fn api5_admin_functions_refuse_customers_under_every_method() {
    let app = TestApp::spawn().await;
    let (_, ana) = app.customer("ana").await;
    let doc = app.get("/openapi.json", None).await.expect(200);
    let mut admin_routes = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            let admin_only = path.starts_with("/admin")
                || (path.starts_with("/products") && method != "get")
                || path.ends_with("/status");
            if admin_only {
                admin_routes.push((method.to_uppercase(), path.replace("{id}", "1")));
            }
        }
    }
    assert!(admin_routes.len() >= 6, "{admin_routes:?}");
    for (method, path) in &admin_routes {
        let method: Method = method.parse().expect("method");
        let body = json!({});
        let as_customer = app.request(method.clone(), path, Some(&ana), Some(&body)).await;
        assert_eq!(as_customer.status, 403, "{method} {path} as a customer: {}", as_customer.body);
        let anonymous = app.request(method.clone(), path, None, Some(&body)).await;
        assert_eq!(anonymous.status, 401, "{method} {path} without a token");
    }
}
}

kassa_tests::black_box! {
/// API6 — Unrestricted access to sensitive business flows: checkout spam.
#[tokio::test]
async fn api6_checkout_spam_is_rate_limited_per_user() {
    let options = AppOptions::default().env("KASSA_CHECKOUT_RATE_PER_MIN", "1").env("KASSA_CHECKOUT_BURST", "3");
    let app = TestApp::spawn_with(options).await;
    let (_, admin) = app.admin("root").await;
    let (_, ana) = app.customer("ana").await;
    let (_, bob) = app.customer("bob").await;
    let lamp = app.product(&admin, "Lamp", 100, 100, "home").await;
    let body = json!({"items": [{"product_id": id(&lamp), "quantity": 1}]});
    for _ in 0..3 {
        app.post("/orders/", Some(&ana), &body).await.expect(202);
    }
    let limited = app.post("/orders/", Some(&ana), &body).await;
    assert!(limited.header("retry-after").is_some());
    limited.expect_problem(429);
    app.post("/orders/", Some(&bob), &body).await.expect(202);
}
}

kassa_tests::black_box! {
/// API7 — Server-side request forgery: no input makes the server fetch a URL.
#[tokio::test]
async fn api7_no_request_field_is_a_url_the_server_would_fetch() {
    let app = TestApp::spawn().await;
    let doc = app.get("/openapi.json", None).await.expect(200);
    let mut suspicious = Vec::new();
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        for (field, spec) in schema["properties"].as_object().into_iter().flatten() {
            let lower = field.to_lowercase();
            let url_like =
                ["url", "uri", "href", "webhook", "callback", "link", "image"].iter().any(|w| lower.contains(w))
                    || spec["format"].as_str().is_some_and(|f| f.contains("uri"));
            if url_like {
                suspicious.push(format!("{name}.{field}"));
            }
        }
    }
    assert!(suspicious.is_empty(), "URL-like inputs: {suspicious:?}");
}
}

kassa_tests::black_box! {
/// API8 — Security misconfiguration: no stack traces, TRACE refused, no CORS
/// by default, metrics exposure as configured.
#[tokio::test]
async fn api8_misconfigurations_are_closed() {
    let app = TestApp::spawn_with(AppOptions::default().env("KASSA_METRICS_TOKEN", "scrape")).await;
    let url = format!("{}/products/", app.base_url);
    let garbage = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"a\": [1, 2,")
        .send()
        .await
        .expect("sent");
    let text = garbage.text().await.expect("text");
    assert!(!text.contains("panicked") && !text.contains(".rs:") && !text.contains("stack"), "{text}");
    let trace = app.request(Method::from_bytes(b"TRACE").expect("TRACE"), "/products/", None, None).await;
    assert_eq!(trace.status, 405);
    let preflight = app
        .client
        .request(Method::OPTIONS, &url)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("sent");
    assert!(preflight.headers().get("access-control-allow-origin").is_none(), "CORS is off by default");
    app.get("/metrics", None).await.expect_problem(401);
    assert_eq!(
        app.client.get(format!("{}/metrics", app.base_url)).bearer_auth("scrape").send().await.expect("sent").status(),
        200
    );
}
}

kassa_tests::black_box! {
/// API9 — Improper inventory management: served routes are the documented ones.
#[tokio::test]
async fn api9_every_documented_route_is_served_and_nothing_else_is() {
    let app = TestApp::spawn().await;
    let doc = app.get("/openapi.json", None).await.expect(200);
    let documented: BTreeSet<String> = doc["paths"].as_object().expect("paths").keys().cloned().collect();
    for path in &documented {
        let concrete = path.replace("{id}", "1").replace("{user_id}", "1").replace("{product_id}", "1");
        for method in doc["paths"][path].as_object().expect("item").keys() {
            let reply = app.request(method.parse().expect("method"), &concrete, None, None).await;
            let unrouted =
                reply.status == 404 && reply.body["detail"].as_str().is_some_and(|d| d.starts_with("no route"));
            assert!(!unrouted, "{method} {path} is documented but not served");
        }
    }
    for undocumented in ["/admin", "/debug", "/internal/jobs", "/api/v1/orders", "/users", "/.env"] {
        let reply = app.get(undocumented, None).await;
        assert_eq!(reply.status, 404, "{undocumented} answers {}", reply.status);
    }
}
}

kassa_tests::black_box! {
/// API10 — Unsafe consumption of APIs: mail headers cannot be injected
/// through any text a client controls.
#[tokio::test]
async fn api10_no_client_text_can_smuggle_a_mail_header() {
    let app = TestApp::spawn().await;
    let (_, admin) = app.admin("root").await;
    for body in [
        json!({"username": "eve\r\nBcc: x@evil.example", "email": "eve@example.com", "password": PASSWORD}),
        json!({"username": "eve", "email": "eve@example.com\r\nBcc: x@evil.example", "password": PASSWORD}),
        json!({"username": "eve", "email": "eve@example.com\nBcc: x@evil.example", "password": PASSWORD}),
    ] {
        app.post("/auth/register", None, &body).await.expect_problem(422);
    }
    let product = json!({"name": "Lamp\r\nBcc: x@evil.example", "price_cents": 1, "stock": 1, "category": "home"});
    app.post("/products/", Some(&admin), &product).await.expect_problem(422);
}
}

fn forge(claims: &Value, secret: &str) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).expect("encode")
}

kassa_tests::black_box! {
/// Token attacks: alg none, wrong key, expired, not yet valid, wrong audience
/// or issuer, tampered payload, oversized token.
#[tokio::test]
async fn jwt_attacks_are_all_refused() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let app = app_with_known_key().await;
    let (user_id, token) = app.customer("ana").await;
    app.get("/auth/me", Some(&token)).await.expect(200);
    let now = get_current_timestamp();
    let claims = |patch: Value| {
        let mut base = json!({"sub": user_id.to_string(), "role": "admin", "exp": now + 600, "iat": now, "nbf": now,
                              "iss": "kassa", "aud": "kassa-api"});
        for (k, v) in patch.as_object().expect("object") {
            base[k] = v.clone();
        }
        base
    };
    // The known key proves the forging works at all.
    app.get("/auth/me", Some(&forge(&claims(json!({})), JWT_SECRET))).await.expect(200);
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let none_payload = URL_SAFE_NO_PAD.encode(claims(json!({})).to_string());
    let parts: Vec<&str> = token.split('.').collect();
    let tampered_payload = URL_SAFE_NO_PAD.encode(claims(json!({"role": "admin"})).to_string());
    let attacks = [
        ("alg none", format!("{none_header}.{none_payload}.")),
        ("wrong key", forge(&claims(json!({})), "another-key-another-key-another-key")),
        ("expired", forge(&claims(json!({"exp": now - 3600})), JWT_SECRET)),
        ("future nbf", forge(&claims(json!({"nbf": now + 3600})), JWT_SECRET)),
        ("wrong aud", forge(&claims(json!({"aud": "someone-else"})), JWT_SECRET)),
        ("wrong iss", forge(&claims(json!({"iss": "evil"})), JWT_SECRET)),
        ("tampered payload", format!("{}.{tampered_payload}.{}", parts[0], parts[2])),
        ("16 KB token", "a".repeat(16 * 1024)),
    ];
    for (name, attack) in attacks {
        let reply = app.get("/auth/me", Some(&attack)).await;
        assert_eq!(reply.status, 401, "{name} was accepted: {}", reply.body);
        let admin_only = app.get("/admin/dashboard", Some(&attack)).await;
        assert_eq!(admin_only.status, 401, "{name} reached an admin route");
    }
}
}
