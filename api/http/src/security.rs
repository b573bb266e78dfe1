//! Response headers that harden every answer: a browser must not sniff a
//! JSON body into something it runs, keep what an authenticated caller was
//! sent in a cache, or frame any page of ours; the documentation pages get
//! a Content-Security-Policy allowing only what they load.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::set_header::SetResponseHeaderLayer;

/// The policy of every answer but the documentation pages: an API
/// response is never a document to run scripts in or to frame.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Swagger UI (`/docs`) is served from the binary and works offline: its
/// scripts and styles are files of our own origin (no inline script), it
/// sets inline styles, its icons are `data:` URIs, and "Try it out" calls
/// this API.
pub const SWAGGER_UI_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// Redoc (`/redoc`), as utoipa-redoc ships it, inlines its start-up script
/// with the OpenAPI document and loads its bundle from Redoc's CDN and its
/// fonts from Google Fonts: the policy allows exactly those, so it keeps
/// working where it did (online); `/docs` is the offline documentation.
pub const REDOC_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.redoc.ly; \
style-src 'self' 'unsafe-inline' https://fonts.googleapis.com; font-src 'self' https://fonts.gstatic.com; \
img-src 'self' data: https://cdn.redoc.ly; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Adds a Content-Security-Policy and `X-Frame-Options: DENY` to the
/// documentation routes in `router` (`/docs` gets [`SWAGGER_UI_CSP`]).
pub fn swagger_ui_headers<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    with_policy(router, SWAGGER_UI_CSP)
}

/// Like [`swagger_ui_headers`], with [`REDOC_CSP`].
pub fn redoc_headers<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    with_policy(router, REDOC_CSP)
}

fn with_policy<S: Clone + Send + Sync + 'static>(router: Router<S>, policy: &'static str) -> Router<S> {
    router
        .layer(SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy)))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
}

/// Wraps the whole application (outside CORS and telemetry, so 404s,
/// problem documents, redirects and preflights get them too):
/// `X-Content-Type-Options: nosniff` on every response, [`API_CSP`] and
/// `X-Frame-Options: DENY` where the documentation did not set its own,
/// and `Cache-Control: no-store` on authenticated and account answers.
pub fn layers(router: Router) -> Router {
    router
        .layer(middleware::from_fn(no_store_when_private))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
}

/// Whether the answer to `request` is for one caller only: it carries
/// credentials, or it is an account or operations route (tokens are issued
/// under `/auth/`).
fn is_private(request: &Request) -> bool {
    let path = request.uri().path();
    request.headers().contains_key(header::AUTHORIZATION)
        || path.starts_with("/auth/")
        || path.starts_with("/admin/")
        || path.starts_with("/console")
}

/// `Cache-Control: no-store` on private answers, so no browser or proxy
/// cache keeps an order, a token or an account.
async fn no_store_when_private(request: Request, next: Next) -> Response {
    let private = is_private(&request);
    let mut response = next.run(request).await;
    if private {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
