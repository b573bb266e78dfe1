//! Logs, request ids and HTTP metrics: the layers every request passes
//! through, and the process-wide tracing subscriber and metrics recorder.

use std::sync::OnceLock;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::error::{PROBLEM_JSON, problem_response};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Installs the tracing subscriber: `RUST_LOG` filters (default `info`),
/// text or JSON lines on standard output.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // A second init (tests, embedded use) keeps the first subscriber.
    drop(result);
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                )
                .expect("bucket list is not empty")
                .set_buckets_for_metric(
                    Matcher::Full(kassa_common::db::GROUP_COMMIT_UNITS.to_owned()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                )
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics shows only this one's series");
            }
            describe_metrics();
            handle
        })
        .clone()
}

fn describe_metrics() {
    kassa_common::queue::metrics::describe();
    kassa_common::db::describe_metrics();
    metrics::describe_counter!("kassa_http_requests_total", "HTTP requests by method, route template and status.");
    metrics::describe_histogram!(
        "kassa_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by method, route template and status."
    );
    metrics::describe_gauge!("kassa_http_connections", "Client connections open now.");
    metrics::describe_counter!(
        "kassa_http_connections_closed_total",
        "Client connections closed by the server: header_timeout, idle_timeout, or displaced (made way for a new connection at the cap)."
    );
    metrics::describe_counter!("kassa_login_failures_total", "Failed logins (unknown user or wrong password).");
    metrics::describe_counter!("kassa_rate_limited_requests_total", "Requests refused with 429, by scope.");
    metrics::describe_counter!(
        "kassa_checkouts_accepted_total",
        "Checkouts and direct orders accepted (202) by this API process."
    );
    kassa_common::store::admin::samples::describe();
    // Present from the first scrape, so rates start from 0.
    metrics::counter!("kassa_login_failures_total").increment(0);
    metrics::counter!("kassa_rate_limited_requests_total", "scope" => "auth").increment(0);
    metrics::counter!("kassa_checkouts_accepted_total").increment(0);
    metrics::gauge!("kassa_http_connections").set(0.0);
    for reason in ["header_timeout", "idle_timeout", "displaced"] {
        metrics::counter!("kassa_http_connections_closed_total", "reason" => reason).increment(0);
    }
}

/// Refreshes the gauges read from the database — orders by status,
/// cancelled orders by reason, stock-audit violations — just before a
/// scrape renders them. The API does not cancel orders itself (workers do),
/// so the database is the one place that knows them all. A failure is
/// logged and the previous values are served.
pub async fn sample_business_gauges(pool: &kassa_common::db::Pool) {
    if let Err(error) = kassa_common::store::admin::samples::sample_business_gauges(pool).await {
        tracing::warn!(%error, "failed to sample order and stock gauges for /metrics");
    }
}

/// Wraps the router in request ids, tracing, metrics, panic catching and
/// problem documents for bare error responses.
pub fn layers(router: Router) -> Router {
    router
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(middleware::from_fn(record_metrics))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a handler panicked");
            problem_response(StatusCode::INTERNAL_SERVER_ERROR, "an internal error occurred; it has been logged")
        }))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let request_id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Every label value comes from a closed set, so no client can make the
/// number of series grow: the method is one of the standard ones or
/// `other`, the route is a template of the router or `unmatched`, and the
/// status is a three-digit code.
async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let labels = [("method", method.to_owned()), ("route", route), ("status", response.status().as_u16().to_string())];
    metrics::counter!("kassa_http_requests_total", &labels).increment(1);
    metrics::histogram!("kassa_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}

/// The `method` label: a method of RFC 9110 (or PATCH), else `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Error responses made by the framework (405, 413 from the body limit, …)
/// carry no body or a plain-text one; give them a problem document too.
async fn problem_for_bare_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    // The console's pages render their own errors for people to read.
    let is_page = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem || is_page {
        return response;
    }
    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => "this method is not allowed on this resource".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => "request body is too large".to_owned(),
        _ => status.canonical_reason().unwrap_or("error").to_owned(),
    };
    let mut problem = problem_response(status, detail);
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = response.headers().get(&name) {
            problem.headers_mut().insert(name, value.clone());
        }
    }
    problem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for invented in ["FOO", "get", "BREW", "PROPFIND", "X-0123456789"] {
            let method = Method::from_bytes(invented.as_bytes()).expect("a token is a valid method");
            assert_eq!(method_label(&method), "other", "{invented}");
        }
    }
}
