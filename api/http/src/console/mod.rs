//! The operator console: server-rendered HTML pages under `/console/` for
//! admins, working offline (templates, style and the few lines of polling
//! script are in the binary). It reads what the JSON admin routes read and
//! acts through the very same functions (retry, discard, cancel), so an
//! action taken here is recorded exactly as one taken through the API.
//! Off with `KASSA_CONSOLE=off`; not part of the OpenAPI document.
//!
//! # Layout
//! - [`session`]: the session cookie, the [`ConsoleAdmin`] extractor, CSRF tokens.
//! - [`sign_in`]: the sign-in form, signing in and out.
//! - [`overview`]: queue counts (polled live), throughput chart, workers, stock audit.
//! - [`jobs`]: jobs by type and state, one job, retry, discard, bulk retry.
//! - [`orders`]: order search, one order's timeline, admin cancel.
//! - [`chart`]: the throughput chart as SVG.
//! - [`templates`]: the templates, auto-escaping every value.
//!
//! [`ConsoleAdmin`]: session::ConsoleAdmin

pub mod chart;
pub mod jobs;
pub mod orders;
pub mod overview;
pub mod session;
pub mod sign_in;
pub mod templates;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use governor::clock::QuantaInstant;
use governor::middleware::NoOpMiddleware;
use tower_governor::GovernorLayer;
use tower_governor::key_extractor::PeerIpKeyExtractor;
use tower_http::set_header::SetResponseHeaderLayer;

use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;

/// The console's Content-Security-Policy: scripts, styles and images of
/// our own origin only (no inline script or style), requests to our
/// origin only, forms posted to our origin only, never framed.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const CONSOLE_CSS: &str = include_str!("assets/console.css");
const CONSOLE_JS: &str = include_str!("assets/console.js");

/// The console's routes; `sign_in_limit` is the `/auth/*` rate limit,
/// applied to sign-in attempts.
pub fn router(
    sign_in_limit: GovernorLayer<PeerIpKeyExtractor, NoOpMiddleware<QuantaInstant>, axum::body::Body>,
) -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(overview::overview))
        .route("/console/overview/live", get(overview::live))
        .route("/console/login", get(sign_in::form).merge(post(sign_in::sign_in).layer(sign_in_limit)))
        .route("/console/logout", post(sign_in::sign_out))
        .route("/console/jobs", get(jobs::list))
        .route("/console/jobs/retry", post(jobs::retry_selected))
        .route("/console/jobs/{id}", get(jobs::show))
        .route("/console/jobs/{id}/retry", post(jobs::retry))
        .route("/console/jobs/{id}/discard", post(jobs::discard))
        .route("/console/orders", get(orders::search))
        .route("/console/orders/{id}", get(orders::show))
        .route("/console/orders/{id}/cancel", post(orders::cancel))
        .route("/console/assets/console.css", get(|| async { asset("text/css; charset=utf-8", CONSOLE_CSS) }))
        .route("/console/assets/console.js", get(|| async { asset("text/javascript; charset=utf-8", CONSOLE_JS) }))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONSOLE_CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=300")], body).into_response()
}

/// What a console request can fail with, answered as an HTML page.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// 303 to the sign-in form: a page asked for without a valid session.
    #[error("sign in first")]
    SignInRequired,
    /// 403: an action posted without a valid session.
    #[error("sign in first")]
    Unauthenticated,
    /// 403: signed in, but not allowed (not an admin, bad CSRF token).
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such job or order.
    #[error("{0}")]
    NotFound(String),
    /// What the API's own functions answered (409 not dead, 422 bad reason, …).
    #[error("{0}")]
    Api(#[from] ApiError),
    /// 500: logged, not shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl From<sqlx::Error> for ConsoleError {
    fn from(error: sqlx::Error) -> Self {
        ConsoleError::Api(ApiError::from(error))
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ConsoleError::SignInRequired => return Redirect::to("/console/login").into_response(),
            ConsoleError::Unauthenticated => (StatusCode::FORBIDDEN, "Sign in to the console first.".to_owned()),
            ConsoleError::Forbidden(message) => (StatusCode::FORBIDDEN, message),
            ConsoleError::NotFound(message) => (StatusCode::NOT_FOUND, message),
            ConsoleError::Api(error) => {
                let message = api_error_message(&error);
                // The API's rendering logs server-side failures once, with their cause.
                let status = error.into_response().status();
                let message = if status.is_server_error() { "Something failed on our side.".into() } else { message };
                (status, message)
            }
            ConsoleError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "console request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something failed on our side.".to_owned())
            }
        };
        let page = templates::render("error.html", minijinja::context! { status => status.as_u16(), message })
            .unwrap_or_else(|_| "error".into());
        (status, Html(page)).into_response()
    }
}

/// What an API error says, fields included.
fn api_error_message(error: &ApiError) -> String {
    match error {
        ApiError::Validation(errors) => {
            errors.0.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; ")
        }
        other => other.to_string(),
    }
}

/// A page: the template rendered with the signed-in admin's details.
pub(crate) fn page(
    name: &str,
    admin: &session::ConsoleAdmin,
    values: minijinja::Value,
) -> Result<Response, ConsoleError> {
    let ctx = minijinja::context! {
        username => &admin.username,
        csrf => &admin.csrf_token,
        ..values
    };
    let html = templates::render(name, ctx)?;
    Ok(Html(html).into_response())
}

/// What a page's form just did, as its redirect back says (`?done=…`:
/// `retried`, `discarded`, `cancel-requested`), for the notice on top.
#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    /// What was done, if anything.
    #[serde(default)]
    pub done: Option<String>,
}
