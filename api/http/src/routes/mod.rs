//! The HTTP surface: one route group per file, merged here with the
//! OpenAPI document collected from the very same routes, so what is served
//! and what is documented cannot drift apart.
//!
//! # Layout
//! - [`auth`]: registration and login.
//! - [`products`]: the catalogue.
//! - [`cart`]: carts and checkout.
//! - [`orders`]: placing and reading orders.
//! - [`ops`]: health, readiness, metrics.
//! - [`admin`]: dashboard, reports, job console, stock audit.

pub mod admin;
pub mod auth;
pub mod cart;
pub mod ops;
pub mod orders;
pub mod products;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use governor::clock::QuantaInstant;
use governor::middleware::NoOpMiddleware;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::PeerIpKeyExtractor;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::openapi::security::{Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_redoc::{Redoc, Servable};
use utoipa_swagger_ui::SwaggerUi;

use crate::config::ServeArgs;
use crate::error::{ApiError, problem_response};
use crate::state::AppState;
use crate::{console, security, server, telemetry};

#[derive(OpenApi)]
#[openapi(
    info(title = "Kassa", description = "Order-processing backend: accounts, catalogue, carts, checkout and orders. Errors are RFC 9457 problem documents."),
    modifiers(&SecurityAddon),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "products", description = "The catalogue"),
        (name = "cart", description = "Carts and checkout"),
        (name = "orders", description = "Orders"),
        (name = "admin", description = "Operations: dashboard, reports, jobs, stock audit"),
        (name = "ops", description = "Health and metrics"),
    )
)]
struct ApiDoc;

struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer_auth",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            "oauth2_password",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new("/auth/login", Scopes::new()))])),
        );
    }
}

/// Documents the problem answers any operation can give, so the document
/// lists every status a client can see: 400 (malformed request), 401 (with
/// security), 404 (with path parameters), 408/413/415/422 (with a body:
/// a body that does not arrive within `KASSA_HTTP_BODY_TIMEOUT_SECS` is
/// 408), 429 (rate-limited routes).
struct StandardProblems;

impl Modify for StandardProblems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Content, Ref, ResponseBuilder};
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content("application/problem+json", Content::new(Some(Ref::from_schema_name("Problem"))))
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let rate_limited = path.starts_with("/auth/") || path == "/orders/" || path.ends_with("/checkout");
            for operation in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete].into_iter().flatten() {
                let mut add = |status: &str, description: &str| {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| problem(description).into());
                };
                add("400", "Malformed request");
                if operation.security.is_some() {
                    add("401", "Missing or invalid bearer token");
                }
                if path.contains('{') {
                    add("404", "No such resource");
                }
                if operation.request_body.is_some() {
                    add("408", "Request body not received in time");
                    add("413", "Request body too large");
                    add("415", "Body is not JSON");
                    add("422", "Invalid fields");
                }
                if rate_limited {
                    add("429", "Rate limited; see Retry-After");
                }
            }
        }
    }
}

/// The rate limit of `/auth/*` (and of console sign-ins): per client IP,
/// `KASSA_AUTH_RATE_PER_MIN` after a burst of `KASSA_AUTH_BURST`, answered
/// 429 with `Retry-After`.
pub fn auth_rate_limit(
    config: &ServeArgs,
) -> GovernorLayer<PeerIpKeyExtractor, NoOpMiddleware<QuantaInstant>, axum::body::Body> {
    let period = Duration::from_millis((60_000 / u64::from(config.auth_rate_per_min)).max(1));
    let governor = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(config.auth_burst)
        .key_extractor(PeerIpKeyExtractor)
        .finish()
        .expect("period and burst are validated non-zero by the command line");
    GovernorLayer::new(Arc::new(governor)).error_handler(|error| {
        let retry_after_secs = match error {
            tower_governor::GovernorError::TooManyRequests { wait_time, .. } => wait_time,
            _ => 1,
        };
        metrics::counter!("kassa_rate_limited_requests_total", "scope" => "auth").increment(1);
        ApiError::TooManyRequests { retry_after_secs }.into_response()
    })
}

/// The API's routes and the OpenAPI document describing exactly them.
pub fn api_routes(config: &ServeArgs) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let auth_limit = auth_rate_limit(config);
    let router = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::router().layer(auth_limit))
        .merge(products::router())
        .merge(cart::router())
        .merge(orders::router())
        .merge(ops::router())
        .merge(admin::router());
    let (router, mut openapi) = router.split_for_parts();
    // After the merge: the routes' operations only exist from here on.
    StandardProblems.modify(&mut openapi);
    (router, openapi)
}

/// The complete application: API routes, documentation, and the layers
/// every request passes through.
pub fn app(state: AppState, config: &ServeArgs) -> Router {
    let (api, openapi) = api_routes(config);
    let body_limit = usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX);
    let swagger_ui = security::swagger_ui_headers(SwaggerUi::new("/docs").url("/openapi.json", openapi.clone()).into());
    let redoc = security::redoc_headers(Redoc::with_url("/redoc", openapi).into());
    // The console stays out of the OpenAPI document: it is pages, not API.
    let api = if config.console.enabled() { api.merge(console::router(auth_rate_limit(config))) } else { api };
    let router = api
        .merge(swagger_ui)
        .merge(redoc)
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(middleware::from_fn(server::answer_body_timeouts))
        .with_state(state);
    let router = telemetry::layers(router);
    let router = match cors(&config.cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    security::layers(router)
}

/// CORS stays off (same-origin only) unless origins are configured.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o.trim()).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                "idempotency-key".parse().expect("valid header name"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// Collections are documented with a trailing slash (`/products/`); a
/// request without it is redirected there, as the seed API did. Anything else
/// unknown is a 404 problem.
async fn fallback(uri: Uri) -> Response {
    let path = uri.path();
    if matches!(path, "/products" | "/cart" | "/orders") {
        let target = match uri.query() {
            Some(query) => format!("{path}/?{query}"),
            None => format!("{path}/"),
        };
        return Redirect::temporary(&target).into_response();
    }
    problem_response(StatusCode::NOT_FOUND, format!("no route for {path}"))
}
