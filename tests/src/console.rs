//! The operator console from a test's side: signing in over HTTP (the
//! session cookie kept by hand, so a test sees and can replace it), reading
//! pages and the CSRF token they carry, posting forms; and the workloads the
//! console tests look at, such as a charge left dead by a worker that died
//! on its last attempt.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::json;

use crate::app::{PASSWORD, TestApp, id};
use crate::process::ChildProcess;

/// The session cookie's name.
pub const COOKIE: &str = "kassa_console";

/// A console page or form answer.
#[derive(Debug)]
pub struct Page {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The HTML.
    pub html: String,
}

impl Page {
    /// A header's value as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The CSRF token of the page's forms.
    #[track_caller]
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.html.find(marker).map(|i| i + marker.len()).expect("the page has a CSRF field");
        let end = self.html[start..].find('"').expect("the CSRF value ends") + start;
        self.html[start..end].to_owned()
    }

    /// The `Set-Cookie` header setting the session cookie, if any.
    pub fn session_cookie(&self) -> Option<&str> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{COOKIE}=")))
    }

    /// Asserts the page is a redirect to the sign-in form.
    #[track_caller]
    pub fn assert_sign_in_redirect(&self) {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.html);
        assert_eq!(self.header("location"), Some("/console/login"));
    }
}

/// A browser-like console client: one session cookie, no redirects followed.
pub struct Console<'a> {
    app: &'a TestApp,
    /// The session cookie's value, once signed in.
    pub cookie: Option<String>,
}

impl<'a> Console<'a> {
    /// A client with no session.
    pub fn anonymous(app: &'a TestApp) -> Console<'a> {
        Console { app, cookie: None }
    }

    /// Signs in as `username` (password [`PASSWORD`]) and keeps the cookie.
    pub async fn signed_in(app: &'a TestApp, username: &str) -> Console<'a> {
        let mut console = Console::anonymous(app);
        let page = console.sign_in(username, PASSWORD).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "sign-in as {username}: {}", page.html);
        console
    }

    /// Posts the sign-in form; keeps the session cookie if one is set.
    pub async fn sign_in(&mut self, username: &str, password: &str) -> Page {
        let page = self.post("/console/login", &[("username", username), ("password", password)]).await;
        if let Some(cookie) = page.session_cookie() {
            let value = cookie.split(';').next().unwrap_or_default().trim_start_matches(&format!("{COOKIE}="));
            self.cookie = Some(value.to_owned());
        }
        page
    }

    fn with_cookie(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cookie {
            Some(cookie) => request.header("cookie", format!("{COOKIE}={cookie}")),
            None => request,
        }
    }

    async fn page(response: reqwest::Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        let html = response.text().await.expect("body read");
        Page { status, headers, html }
    }

    /// GET a console path.
    pub async fn get(&self, path: &str) -> Page {
        let request = self.with_cookie(self.app.client.get(format!("{}{path}", self.app.base_url)));
        Self::page(request.send().await.expect("request sent")).await
    }

    /// POST a form to a console path.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.post_from(None, path, fields).await
    }

    /// POST a form as a page of `origin` would (its `Origin` header).
    pub async fn post_from(&self, origin: Option<&str>, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: String =
            fields.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect::<Vec<_>>().join("&");
        let request = self
            .with_cookie(self.app.client.post(format!("{}{path}", self.app.base_url)))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        let request = match origin {
            Some(origin) => request.header("origin", origin),
            None => request,
        };
        Self::page(request.send().await.expect("request sent")).await
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A charge left dead, and what it belongs to.
pub struct DeadCharge {
    /// The order, still pending.
    pub order_id: i64,
    /// The dead charge job.
    pub job_id: i64,
    /// The customer's token.
    pub customer_token: String,
    /// The worker now running (normal gateway, one attempt per charge).
    pub worker: ChildProcess,
}

/// The dead charge job of order `order_id`, waiting until there is one.
pub async fn wait_for_dead_charge(app: &TestApp, admin_token: &str, order_id: i64, timeout: Duration) -> i64 {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let page = app.get("/admin/jobs?state=dead&type=charge", Some(admin_token)).await.expect(200);
        let found = page["items"]
            .as_array()
            .and_then(|items| items.iter().find(|j| j["payload"]["order_id"] == order_id))
            .and_then(|j| j["id"].as_i64());
        if let Some(job_id) = found {
            return job_id;
        }
        assert!(std::time::Instant::now() < deadline, "no dead charge for order {order_id}: {page:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An order whose charge is dead: a worker with a gateway that hangs takes
/// the charge on its one allowed attempt and is killed; the next worker
/// finds the lease expired and no attempt left, and marks the job dead
/// ("gave up after 1 attempts"), the order still pending. (A declined
/// card is no dead job: the charge cancels the order and finishes.)
pub async fn dead_charge(app: &TestApp, admin_token: &str, customer: &str, product_id: i64) -> DeadCharge {
    let one_attempt = ("KASSA_JOB_MAX_ATTEMPTS_BY_TYPE", "charge=1");
    let mut hanging =
        app.spawn_worker(&format!("{customer}-hanging"), &[one_attempt, ("KASSA_SANDBOX_LATENCY_MS", "600000")]);
    let (_, customer_token) = app.customer(customer).await;
    let body = json!({"items": [{"product_id": product_id, "quantity": 1}], "payment_method": "pm_card_visa"});
    let order = app.post("/orders/", Some(&customer_token), &body).await.expect(202);
    let order_id = id(&order);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = app.get("/admin/jobs?state=running&type=charge", Some(admin_token)).await.expect(200);
        let held =
            page["items"].as_array().is_some_and(|items| items.iter().any(|j| j["payload"]["order_id"] == order_id));
        if held {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the charge of order {order_id} never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hanging.kill();
    let worker = app.spawn_worker(&format!("{customer}-worker"), &[one_attempt]);
    let job_id = wait_for_dead_charge(app, admin_token, order_id, Duration::from_secs(30)).await;
    DeadCharge { order_id, job_id, customer_token, worker }
}
