//! Several API processes on one database, and a database that goes away:
//! the same `Idempotency-Key` sent at once to two API processes makes one
//! order (both backends); a PostgreSQL server whose connections are cut
//! under load loses no acknowledged order and answers 503, never 500; a
//! server that cannot be reached is named in a clear error, password left out.

use std::process::Command;
use std::time::Duration;

use kassa_common::db::Backend;
use kassa_tests::app::{AppOptions, TestApp};
use kassa_tests::backend;
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(60);

kassa_tests::black_box! {
/// Twenty keys, each sent at the same moment to two API processes on one
/// database: one order per key; every answer is the order (202, the second
/// one replayed) or "in flight" (409), never a second order or a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_idempotency_key_sent_to_two_api_processes_at_once_makes_one_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = AppOptions::persistent(dir.path()).await;
    let first = TestApp::spawn_with(options.clone()).await;
    let second = TestApp::spawn_with(options).await;
    let (_, admin) = first.admin("root").await;
    let (_, ana) = first.customer("ana").await;
    let lamp = first.product(&admin, "Lamp", 100, 1000, "home").await;
    let body = json!({"items": [{"product_id": lamp["id"], "quantity": 1}]});
    for key in 0..20 {
        let key = format!("race-{key}");
        let send = |app: &TestApp| {
            app.client
                .post(format!("{}/orders/", app.base_url))
                .bearer_auth(&ana)
                .header("Idempotency-Key", &key)
                .json(&body)
                .send()
        };
        let (a, b) = tokio::join!(send(&first), send(&second));
        let mut order_ids = Vec::new();
        for reply in [a, b] {
            let reply = TestApp::reply(reply.expect("answered")).await;
            match reply.status.as_u16() {
                202 => order_ids.push(reply.body["id"].as_i64().expect("order id")),
                409 => assert!(reply.body["detail"].as_str().unwrap_or("").contains("Idempotency-Key")),
                other => panic!("key {key}: unexpected {other}: {}", reply.body),
            }
        }
        assert!(!order_ids.is_empty(), "key {key}: at least one request placed the order");
        order_ids.dedup();
        assert_eq!(order_ids.len(), 1, "key {key}: both answers name the same order");
    }
    assert_eq!(first.count("select count(*) from orders").await, 20, "one order per key");
    let _worker = first.spawn_worker("w1", &[]);
    first.assert_settled(SETTLE).await;
}
}

/// The PostgreSQL sessions of a database, cut by the server as an
/// administrator (or a failover) would.
async fn terminate_sessions(server_url: &str, database: &str) -> u64 {
    use sqlx::Connection;
    let mut admin = sqlx::postgres::PgConnection::connect(server_url).await.expect("admin connection");
    let cut: Vec<bool> = sqlx::query_scalar(
        "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
    )
    .bind(database)
    .fetch_all(&mut admin)
    .await
    .expect("terminate");
    let _ = admin.close().await;
    cut.into_iter().filter(|done| *done).count() as u64
}

/// Orders keep coming while every Kassa session is cut five times: each
/// answer is 202, 409 or 503 (never a 500), and every acknowledged order
/// ends confirmed once the connections come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cutting_the_postgres_connections_under_load_loses_no_acknowledged_order() {
    if !backend::postgres_available() {
        return;
    }
    backend::scoped(Backend::Postgres, async {
        let app = TestApp::spawn_with(
            AppOptions::default().env("KASSA_CHECKOUT_RATE_PER_MIN", "100000").env("KASSA_CHECKOUT_BURST", "100000"),
        )
        .await;
        let _worker = app.spawn_worker("w1", &[]);
        let (_, admin) = app.admin("root").await;
        let (_, ana) = app.customer("ana").await;
        let lamp = app.product(&admin, "Lamp", 100, 100_000, "home").await;
        let order = json!({"items": [{"product_id": lamp["id"], "quantity": 1}]});
        let server = kassa_common::db::scratch::postgres_server_url().expect("server");
        let database = url::Url::parse(&app.database_url()).expect("url").path().trim_start_matches('/').to_owned();

        let load = {
            let (client, base, token) = (app.client.clone(), app.base_url.clone(), ana.clone());
            tokio::spawn(async move {
                let mut accepted = Vec::new();
                let mut unavailable = 0;
                for _ in 0..400 {
                    let response = client
                        .post(format!("{base}/orders/"))
                        .bearer_auth(&token)
                        .json(&order)
                        .send()
                        .await
                        .expect("the API answers");
                    let reply = TestApp::reply(response).await;
                    match reply.status.as_u16() {
                        202 => accepted.push(reply.body["id"].as_i64().expect("id")),
                        503 => unavailable += 1,
                        other => panic!("unexpected {other} while connections were cut: {}", reply.body),
                    }
                }
                (accepted, unavailable)
            })
        };
        let mut cut = 0;
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            cut += terminate_sessions(&server, &database).await;
        }
        let (accepted, unavailable) = load.await.expect("load");
        eprintln!("{} orders accepted, {unavailable} answered 503, {cut} sessions cut", accepted.len());
        assert!(cut >= 5, "sessions were really cut ({cut})");
        assert!(!accepted.is_empty());
        for order_id in &accepted {
            app.wait_for_status(*order_id, "confirmed", &ana, SETTLE).await;
        }
        app.assert_settled(SETTLE).await;
    })
    .await;
}

/// `kassa-api`, `kassa-api migrate` and `kassa-worker` pointed at a server
/// that does not answer exit non-zero with a message naming the host and
/// port, never the password.
#[test]
fn an_unreachable_server_is_named_without_its_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = "postgres://kassa:s3cret-pass@127.0.0.1:1/shop";
    for (binary, args) in [("kassa-api", vec![]), ("kassa-api", vec!["migrate"]), ("kassa-worker", vec![])] {
        let output = Command::new(kassa_tests::binaries::binary(binary))
            .args(&args)
            .env("KASSA_DATABASE_URL", url)
            .env("KASSA_DATA_DIR", dir.path())
            .env("KASSA_BIND", "127.0.0.1:0")
            .output()
            .expect("runs");
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(!output.status.success(), "{binary} {args:?} must fail: {text}");
        assert!(text.contains("127.0.0.1:1"), "{binary} {args:?} names the server: {text}");
        assert!(!text.contains("s3cret-pass"), "{binary} {args:?} leaks the password: {text}");
    }
    let output = Command::new(kassa_tests::binaries::binary("kassa-api"))
        .env("KASSA_DATABASE_URL", "mysql://root:s3cret-pass@db/shop")
        .env("KASSA_DATA_DIR", dir.path())
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(text.contains("expected sqlite://"), "{text}");
    assert!(!text.contains("s3cret-pass"), "{text}");
}
