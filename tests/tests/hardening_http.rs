//! Connection limits, metric cardinality and hardening headers, against the
//! real `kassa-api` over real TCP sockets: slow heads, trickling bodies and
//! idle keep-alives are cut at their deadlines, thousands of slow
//! connections never lock out a fresh client, invented methods and paths
//! add no metric series, and every answer carries the hardening headers.

use std::time::{Duration, Instant};

use futures::future::join_all;
use kassa_tests::app::{AppOptions, TestApp};
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Small timeouts, each different, so a test can tell which one acted.
fn quick_timeouts(header_secs: u64, body_secs: u64, idle_secs: u64) -> AppOptions {
    AppOptions::default()
        .env("KASSA_HTTP_HEADER_TIMEOUT_SECS", &header_secs.to_string())
        .env("KASSA_HTTP_BODY_TIMEOUT_SECS", &body_secs.to_string())
        .env("KASSA_HTTP_IDLE_TIMEOUT_SECS", &idle_secs.to_string())
}

fn addr(app: &TestApp) -> String {
    app.base_url.trim_start_matches("http://").to_owned()
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(addr(app)).await.expect("the API accepts a connection")
}

/// Reads until the server closes the connection (end of stream or reset)
/// and returns what it sent; panics if it is still open after `timeout`.
async fn read_until_closed(stream: &mut TcpStream, timeout: Duration) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0_u8; 4096];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "the connection is still open after {timeout:?}; received {:?}",
                String::from_utf8_lossy(&received)
            ),
            Ok(Ok(0) | Err(_)) => return received,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one complete `/healthz` response (its body is small and ends in `}`).
async fn read_one_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0_u8; 4096];
    while !received.ends_with(b"}") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("a response within 5 s")
            .expect("read");
        assert!(n > 0, "closed before the response was complete: {:?}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[track_caller]
fn assert_between(elapsed: Duration, low: Duration, high: Duration, what: &str) {
    assert!(low <= elapsed && elapsed <= high, "{what} after {elapsed:?}, expected between {low:?} and {high:?}");
}

#[tokio::test]
async fn a_request_head_sent_a_byte_at_a_time_is_cut_at_the_header_timeout() {
    let app = TestApp::spawn_with(quick_timeouts(2, 20, 20)).await;
    let mut stream = connect(&app).await;
    let started = Instant::now();
    let (mut reader, mut writer) = stream.split();
    let trickle = async {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: kassa\r\nX-Slow: ".iter().cycle() {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let closed = async {
        let mut buf = [0_u8; 256];
        matches!(reader.read(&mut buf).await, Ok(0) | Err(_))
    };
    let closed = tokio::select! {
        closed = closed => closed,
        () = trickle => true,
        () = tokio::time::sleep(Duration::from_secs(15)) => false,
    };
    assert!(closed, "a head trickling a byte every 250 ms is still being read after 15 s");
    assert_between(started.elapsed(), Duration::from_millis(1800), Duration::from_secs(5), "closed");
    // The server is as responsive as before.
    app.get("/healthz", None).await.expect(200);
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout() {
    let app = TestApp::spawn_with(quick_timeouts(2, 20, 20)).await;
    let mut stream = connect(&app).await;
    let started = Instant::now();
    let received = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert_between(started.elapsed(), Duration::from_millis(1800), Duration::from_secs(5), "closed");
    assert!(received.is_empty(), "nothing is sent to a client that asked nothing");
}

#[tokio::test]
async fn a_trickling_body_is_answered_408_and_its_connection_closed() {
    let app = TestApp::spawn_with(quick_timeouts(20, 2, 20)).await;
    let mut stream = connect(&app).await;
    let head =
        "POST /auth/login HTTP/1.1\r\nHost: kassa\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("head sent");
    let started = Instant::now();
    let (mut reader, mut writer) = stream.split();
    let trickle = async {
        for _ in 0..200 {
            if writer.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        std::future::pending::<()>().await;
    };
    let answer = async {
        let mut received = Vec::new();
        let mut buf = [0_u8; 4096];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return received,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    let received = tokio::select! {
        received = answer => received,
        () = trickle => unreachable!("the trickle never ends by itself"),
        () = tokio::time::sleep(Duration::from_secs(15)) => panic!("a body trickling for 15 s is still being read"),
    };
    assert_between(started.elapsed(), Duration::from_millis(1800), Duration::from_secs(5), "answered and closed");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.contains("application/problem+json") && text.contains("\"status\":408"), "{text}");
    let metrics = app.get("/metrics", None).await.expect(200);
    let scrape = kassa_tests::prometheus::parse(metrics.as_str().expect("text")).expect("valid exposition");
    let timed_out = scrape.sum("kassa_http_requests_total", &[("route", "/auth/login"), ("status", "408")]);
    assert_eq!(timed_out, 1.0, "the 408 is counted as an answer of its route");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout_not_the_header_timeout() {
    let app = TestApp::spawn_with(quick_timeouts(1, 20, 3)).await;
    let mut stream = connect(&app).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: kassa\r\n\r\n";
    stream.write_all(request).await.expect("sent");
    assert!(read_one_response(&mut stream).await.starts_with("HTTP/1.1 200 "));
    // Still open past the 1 s header timeout: waiting between requests is
    // idling, not a slow head; a second request is served on it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream.write_all(request).await.expect("sent");
    assert!(read_one_response(&mut stream).await.starts_with("HTTP/1.1 200 "), "keep-alive still works");
    let idle_since = Instant::now();
    let received = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(received.is_empty());
    assert_between(idle_since.elapsed(), Duration::from_millis(2700), Duration::from_secs(6), "idle connection closed");
}

/// Floods of connections, one at a time: two at once on a small machine
/// would measure the machine, not the API.
static FLOOD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The test process needs a file descriptor per held socket.
fn raise_own_open_files_limit(needed: u64) {
    let limit = rlimit::increase_nofile_limit(u64::MAX).expect("the open-file limit can be read and raised");
    assert!(limit >= needed, "this test needs an open-file limit of at least {needed}; the hard limit is {limit}");
}

/// Opens `count` connections that each send half a request head and then
/// nothing; returns those the kernel completed within 5 s.
async fn hold_slow_connections(app: &TestApp, count: usize) -> Vec<TcpStream> {
    let addr = addr(app);
    let opened = join_all((0..count).map(|_| {
        let addr = addr.clone();
        async move {
            let mut stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await.ok()?.ok()?;
            // The server may already have closed it to make way for others.
            let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: kassa\r\nX-Slow: ").await;
            Some(stream)
        }
    }))
    .await;
    opened.into_iter().flatten().collect()
}

/// `/healthz` on a fresh connection, timed; `None` if no answer in 3 s.
async fn time_fresh_healthz(app: &TestApp) -> Option<Duration> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    let started = Instant::now();
    let reply = tokio::time::timeout(Duration::from_secs(3), client.get(format!("{}/healthz", app.base_url)).send())
        .await
        .ok()?
        .ok()?;
    (reply.status() == 200).then(|| started.elapsed())
}

#[tokio::test]
async fn healthz_answers_within_a_second_while_2000_slow_connections_are_held_under_a_1024_file_limit() {
    let _one_flood_at_a_time = FLOOD.lock().await;
    raise_own_open_files_limit(2_500);
    // Default connection settings; the file limit of a small container,
    // which the API cannot raise: its cap comes out at 768.
    let app = TestApp::spawn_with(AppOptions::default().open_files_limit(1024)).await;
    let held = hold_slow_connections(&app, 2_000).await;
    assert_eq!(held.len(), 2_000, "every slow connection was taken by the API or its backlog");
    for _ in 0..5 {
        let elapsed = time_fresh_healthz(&app).await;
        assert!(elapsed.is_some_and(|e| e < Duration::from_secs(1)), "GET /healthz took {elapsed:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let lines = app.process.lines();
    assert!(lines.iter().any(|l| l.contains("max_connections=768")), "the cap fits the file limit: {lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("Too many open files")), "the API ran out of files: {lines:#?}");
    drop(held);
}

#[tokio::test]
async fn past_the_connection_cap_slow_connections_make_way_for_new_ones() {
    let _one_flood_at_a_time = FLOOD.lock().await;
    raise_own_open_files_limit(2_500);
    let app = TestApp::spawn_with(AppOptions::default().env("KASSA_HTTP_MAX_CONNECTIONS", "50")).await;
    let held = hold_slow_connections(&app, 2_000).await;
    assert_eq!(held.len(), 2_000);
    for _ in 0..3 {
        let elapsed = time_fresh_healthz(&app).await;
        assert!(elapsed.is_some_and(|e| e < Duration::from_secs(1)), "GET /healthz took {elapsed:?}");
    }
    // Connections the listen backlog could not take at once arrive as the
    // kernel retries them; wait until all but the last 50 made way.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = app.get("/metrics", None).await.expect(200);
        let scrape = kassa_tests::prometheus::parse(metrics.as_str().expect("text")).expect("valid exposition");
        let open = scrape.sum("kassa_http_connections", &[]);
        assert!((1.0..=50.0).contains(&open), "{open} connections open under a cap of 50");
        let displaced = scrape.sum("kassa_http_connections_closed_total", &[("reason", "displaced")]);
        if displaced >= 1_950.0 {
            break;
        }
        assert!(Instant::now() < deadline, "only {displaced} of 2,000 slow connections made way");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(held);
}

/// The number of `kassa_http_requests_total` series in a scrape.
async fn request_series(app: &TestApp) -> usize {
    let metrics = app.get("/metrics", None).await.expect(200);
    let scrape = kassa_tests::prometheus::parse(metrics.as_str().expect("text")).expect("valid exposition");
    scrape.samples.iter().filter(|s| s.name == "kassa_http_requests_total").count()
}

#[tokio::test]
async fn invented_methods_and_paths_add_no_metric_series() {
    let app = TestApp::spawn().await;
    // Every label combination this test can produce, once.
    app.request(Method::from_bytes(b"WARMUP").expect("method"), "/warm-up", None, None).await;
    app.get("/warm-up", None).await.expect_problem(404);
    let before = request_series(&app).await;
    for i in 0..500 {
        let method = Method::from_bytes(format!("INVENTED{i}").as_bytes()).expect("a token is a method");
        let reply = app.request(method, &format!("/invented/{i}"), None, None).await;
        assert_eq!(reply.status, 404);
        app.get(&format!("/no/such/path/{i}"), None).await.expect_problem(404);
    }
    let after = request_series(&app).await;
    assert!(after <= before + 2, "{before} series before 1,000 invented requests, {after} after");
    let metrics = app.get("/metrics", None).await.expect(200);
    let text = metrics.as_str().expect("text");
    let scrape = kassa_tests::prometheus::parse(text).expect("valid exposition");
    let other = scrape.sum("kassa_http_requests_total", &[("method", "other"), ("route", "unmatched")]);
    assert_eq!(other, 501.0, "invented methods are counted as method=\"other\"");
    assert!(!text.contains("INVENTED"), "no invented method reaches a label");
}

#[tokio::test]
async fn every_answer_carries_the_hardening_headers() {
    let app = TestApp::spawn().await;
    let (_, token) = app.customer("ana").await;
    let public = [
        app.get("/healthz", None).await,
        app.get("/products/", None).await,
        app.get("/no/such/route", None).await,
        app.request(Method::PATCH, "/products/", None, None).await,
    ];
    for reply in &public {
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"), "{reply:?}");
        assert_eq!(reply.header("content-security-policy"), Some("default-src 'none'; frame-ancestors 'none'"));
        assert_eq!(reply.header("x-frame-options"), Some("DENY"));
        assert_eq!(reply.header("cache-control"), None, "public answers may be cached: {reply:?}");
    }
    let private = [
        app.get("/auth/me", Some(&token)).await,
        app.get("/orders/my-orders", Some(&token)).await,
        app.get("/auth/me", Some("not-a-token")).await,
        app.post("/auth/login", None, &serde_json::json!({"username": "ana", "password": kassa_tests::app::PASSWORD}))
            .await,
    ];
    for reply in &private {
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{reply:?}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    }
}

#[tokio::test]
async fn the_documentation_pages_have_a_policy_and_still_load_everything_from_the_binary() {
    let app = TestApp::spawn().await;
    let docs = app.get("/docs/", None).await;
    assert_eq!(docs.status, 200);
    let policy = docs.header("content-security-policy").expect("a CSP on /docs").to_owned();
    assert!(policy.contains("frame-ancestors 'none'") && policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("http"), "/docs needs no other origin: {policy}");
    assert_eq!(docs.header("x-frame-options"), Some("DENY"));
    assert_eq!(docs.header("x-content-type-options"), Some("nosniff"));
    let html = docs.body.as_str().expect("html").to_owned();
    assert!(!html.contains("<script>"), "an inline script would need 'unsafe-inline'");
    let assets: Vec<&str> =
        html.split(['"', '\'']).filter(|s| s.ends_with(".js") || s.ends_with(".css") || s.ends_with(".png")).collect();
    assert!(assets.len() >= 5, "{html}");
    for asset in assets {
        assert!(!asset.contains("//"), "{asset} is not of our origin");
        let url = format!("{}/docs/{}", app.base_url, asset.trim_start_matches("./"));
        let reply = app.client.get(&url).send().await.expect("sent");
        assert_eq!(reply.status(), 200, "{url}");
        assert_eq!(reply.headers()["x-content-type-options"], "nosniff");
    }
    let redoc = app.get("/redoc", None).await;
    assert_eq!(redoc.status, 200);
    let policy = redoc.header("content-security-policy").expect("a CSP on /redoc");
    assert!(policy.contains("frame-ancestors 'none'") && policy.contains("https://cdn.redoc.ly"), "{policy}");
    assert_eq!(redoc.header("x-frame-options"), Some("DENY"));
}
