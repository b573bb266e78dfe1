//! `/orders`: placing orders (202, then the worker pipeline takes over),
//! reading one's own orders. Ownership is enforced: another customer's order
//! is a 404, as if it did not exist.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kassa_common::db::begin_write;
use kassa_common::domain::order::{CancelReason, MAX_ORDER_LINES, OrderStatus, parse_payment_method, parse_quantity};
use kassa_common::domain::validation::ValidationErrors;
use kassa_common::jobs::StatusTransition;
use kassa_common::store::notifications::{self, SentNotification};
use kassa_common::store::orders::{self, CreateOrderError, OrderView, RequestedLine};
use kassa_common::store::timeline::{self, TimelineEntry};
use kassa_common::store::{StoreError, carts, users};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{AdminUser, AuthUser};
use crate::error::{ApiError, Problem};
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::idempotency::{Created, IdempotencyKey, fingerprint};
use crate::state::AppState;

/// The `/orders` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_order))
        .routes(routes!(my_orders))
        .routes(routes!(get_order))
        .routes(routes!(set_status))
        .routes(routes!(cancel_order))
}

/// One requested line.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct OrderLineBody {
    /// The product.
    pub product_id: i64,
    /// Units, 1–1000 (after merging duplicate lines).
    pub quantity: i64,
}

/// A new order placed directly, without a cart.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateOrderBody {
    /// The lines; duplicate products are merged.
    pub items: Vec<OrderLineBody>,
    /// Payment method token (sandbox: `pm_card_visa`, `pm_card_chargeDeclined`, `pm_card_flaky`); default `pm_card_visa`.
    pub payment_method: Option<String>,
    /// Whose order: the caller's own id, or any user's for an admin. Default: the caller.
    pub user_id: Option<i64>,
}

/// Where an order's lines come from.
pub(crate) enum OrderSource {
    /// The owner's cart, cleared in the same transaction.
    Cart,
    /// Lines given in the request.
    Lines(Vec<RequestedLine>),
}

/// Places an order for `owner_id` in one write transaction: the order, its
/// items, the cleared cart, the `reserve_stock` job and the idempotency
/// record commit together. Answers 202 with the order and its `Location`.
pub(crate) async fn place_order(
    state: &AppState,
    caller: AuthUser,
    owner_id: i64,
    source: OrderSource,
    payment_method: String,
    key: IdempotencyKey,
    request_fingerprint: String,
) -> Result<Response, ApiError> {
    if let Err(not_until) = state.checkout_limiter.check_key(&caller.user_id) {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
        metrics::counter!("kassa_rate_limited_requests_total", "scope" => "checkout").increment(1);
        return Err(ApiError::TooManyRequests { retry_after_secs: wait.as_secs().max(1) });
    }
    let guard = state.in_flight.claim(caller.user_id, key, request_fingerprint)?;
    let mut tx = begin_write(&state.pool).await?;
    if let Some(replayed) = guard.replay(&mut tx).await? {
        return Ok(replayed);
    }
    let lines = match &source {
        OrderSource::Cart => {
            let lines = carts::lines(&mut tx, owner_id).await?;
            if lines.is_empty() {
                return Err(ApiError::conflict("the cart is empty"));
            }
            lines.iter().map(|l| RequestedLine { product_id: l.product_id, quantity: l.quantity }).collect()
        }
        OrderSource::Lines(lines) => lines.clone(),
    };
    let actor =
        if caller.is_admin() { format!("admin:{}", caller.user_id) } else { format!("user:{}", caller.user_id) };
    let order_id =
        orders::create_order(&mut tx, owner_id, &lines, &payment_method, &actor).await.map_err(create_order_error)?;
    if let OrderSource::Cart = source {
        carts::clear(&mut tx, owner_id).await?;
    }
    let view = orders::get_order_view(&mut tx, order_id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("order {order_id} vanished inside its transaction")))?;
    let created = Created {
        status: StatusCode::ACCEPTED,
        body: serde_json::to_value(&view).map_err(|e| ApiError::Internal(e.into()))?,
        location: Some(format!("/orders/{order_id}")),
    };
    let response = guard.finish(&mut tx, created, state.settings.idempotency_ttl_ms).await?;
    tx.commit().await?;
    metrics::counter!("kassa_checkouts_accepted_total").increment(1);
    tracing::info!(order_id, user_id = owner_id, "order accepted");
    Ok(response)
}

fn create_order_error(error: CreateOrderError) -> ApiError {
    match error {
        CreateOrderError::UnknownProduct(id) => ApiError::NotFound(format!("product {id} not found")),
        CreateOrderError::NotEnoughStock { product_id, available, requested } => {
            ApiError::not_enough_stock(product_id, available, requested)
        }
        CreateOrderError::MixedCurrencies => ApiError::invalid("items", "all products must share one currency"),
        CreateOrderError::Queue(e) => StoreError::from(e).into(),
        CreateOrderError::Database(e) => e.into(),
    }
}

/// Validates and merges requested lines.
fn parse_lines(items: &[OrderLineBody]) -> Result<Vec<RequestedLine>, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    if items.is_empty() {
        errors.add("items", "must contain at least one line");
    }
    let mut merged: BTreeMap<i64, i64> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        if item.quantity < 1 {
            errors.add(format!("items[{i}].quantity"), "must be at least 1");
        }
        *merged.entry(item.product_id).or_default() += item.quantity.max(0);
    }
    if merged.len() > MAX_ORDER_LINES {
        errors.add("items", format!("must name at most {MAX_ORDER_LINES} products"));
    }
    for (product_id, quantity) in &merged {
        if let Err(message) = parse_quantity(*quantity) {
            errors.add("items", format!("product {product_id}: total quantity {message}"));
        }
    }
    errors.finish()?;
    Ok(merged.into_iter().map(|(product_id, quantity)| RequestedLine { product_id, quantity }).collect())
}

/// Place an order directly from a list of lines.
#[utoipa::path(post, path = "/orders/", tag = "orders",
    security(("bearer_auth" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body return the first response")),
    request_body = CreateOrderBody,
    responses(
        (status = 202, description = "Accepted; processing continues in the background", body = OrderView,
         headers(("Location" = String, description = "The order's URL"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Ordering for another user", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown product", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not enough stock, or the same key is in flight", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid lines, or a reused key with another body", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(user_id = user.user_id))]
async fn create_order(
    State(state): State<AppState>,
    user: AuthUser,
    key: IdempotencyKey,
    Json(raw): Json<serde_json::Value>,
) -> Result<Response, ApiError> {
    let body: CreateOrderBody =
        serde_json::from_value(raw.clone()).map_err(|e| ApiError::invalid("body", &e.to_string()))?;
    let owner_id = body.user_id.unwrap_or(user.user_id);
    if !user.may_act_for(owner_id) {
        return Err(ApiError::Forbidden("you may only place orders for yourself".into()));
    }
    if owner_id != user.user_id {
        // An admin ordering for someone: that someone must exist.
        let mut conn = state.pool.acquire().await?;
        if users::get_user(&mut conn, owner_id).await?.is_none() {
            return Err(ApiError::NotFound(format!("user {owner_id} not found")));
        }
    }
    let mut errors = ValidationErrors::default();
    let payment_method = errors.check("payment_method", parse_payment_method(body.payment_method.as_deref()));
    let lines = match parse_lines(&body.items) {
        Ok(lines) => Some(lines),
        Err(more) => {
            errors.0.extend(more.0);
            None
        }
    };
    let (Some(payment_method), Some(lines)) = (payment_method, lines) else {
        return Err(errors.into());
    };
    let request_fingerprint = fingerprint("POST", "/orders/", &raw);
    place_order(&state, user, owner_id, OrderSource::Lines(lines), payment_method, key, request_fingerprint).await
}

/// Pagination parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, default 20, capped at 100.
    pub limit: Option<i64>,
    /// Results to skip.
    pub offset: Option<i64>,
}

impl PageParams {
    /// (limit, offset) validated: limit 1–100 (capped), offset ≥ 0.
    pub fn resolve(&self) -> Result<(i64, i64), ApiError> {
        let limit = self.limit.unwrap_or(20);
        let offset = self.offset.unwrap_or(0);
        if limit < 1 {
            return Err(ApiError::invalid("limit", "must be at least 1"));
        }
        if offset < 0 {
            return Err(ApiError::invalid("offset", "must not be negative"));
        }
        Ok((limit.min(100), offset))
    }
}

/// A page of orders.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderList {
    /// Orders on this page, newest first.
    pub items: Vec<OrderView>,
    /// The caller's orders in all.
    pub total: i64,
    /// Page size used.
    pub limit: i64,
    /// Offset used.
    pub offset: i64,
}

/// The caller's orders, newest first.
#[utoipa::path(get, path = "/orders/my-orders", tag = "orders",
    security(("bearer_auth" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of the caller's orders", body = OrderList),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters", body = Problem, content_type = "application/problem+json"),
    ))]
async fn my_orders(
    State(state): State<AppState>,
    user: AuthUser,
    Query(page): Query<PageParams>,
) -> Result<axum::Json<OrderList>, ApiError> {
    let (limit, offset) = page.resolve()?;
    let mut conn = state.pool.acquire().await?;
    let (items, total) = orders::list_user_orders(&mut conn, user.user_id, limit, offset).await?;
    Ok(axum::Json(OrderList { items, total, limit, offset }))
}

/// An order with everything that happened to it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderDetail {
    /// The order, items, payment and status history.
    #[serde(flatten)]
    pub order: OrderView,
    /// E-mails sent about it.
    pub notifications: Vec<SentNotification>,
    /// Status changes, job attempts, waiting jobs, payment, refund and e-mails, oldest first.
    pub timeline: Vec<TimelineEntry>,
}

/// One order with items, payment, history, notifications and its timeline (owner or admin).
#[utoipa::path(get, path = "/orders/{id}", tag = "orders",
    security(("bearer_auth" = [])),
    params(("id" = i64, Path, description = "Order number")),
    responses(
        (status = 200, description = "The order", body = OrderDetail),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or not the caller's", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_order(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> Result<axum::Json<OrderDetail>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    match orders::get_order_view(&mut conn, id).await? {
        Some(order) if user.may_act_for(order.order.user_id) => {
            let notifications = notifications::for_order(&mut conn, id).await?;
            let timeline = timeline::order_timeline(&mut conn, id).await?;
            Ok(axum::Json(OrderDetail { order, notifications, timeline }))
        }
        _ => Err(ApiError::NotFound("order not found".into())),
    }
}

/// A status change asked by an admin.
#[derive(Debug, Deserialize, ToSchema)]
pub struct StatusChangeBody {
    /// The target status: `shipped`, `delivered` or `cancelled` (confirmation is the payment pipeline's).
    pub status: String,
    /// Why, recorded in the history (and, for a cancellation, told to the customer).
    pub reason: Option<String>,
}

/// A cancellation's optional reason.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CancelBody {
    /// Why, recorded in the history.
    pub reason: Option<String>,
}

fn parse_reason(reason: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(reason) = reason.map(str::trim).filter(|r| !r.is_empty()) else { return Ok(None) };
    if reason.chars().count() > 500 || reason.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::invalid("reason", "must be at most 500 characters without control characters"));
    }
    Ok(Some(reason.to_owned()))
}

/// A 409 naming the moves the order's status allows.
fn illegal_move(from: OrderStatus, to: OrderStatus, allowed: &[OrderStatus]) -> ApiError {
    let mut extra = serde_json::Map::new();
    extra.insert("current_status".into(), from.as_str().into());
    extra.insert("allowed".into(), allowed.iter().map(|s| serde_json::Value::from(s.as_str())).collect());
    ApiError::Conflict { detail: format!("an order cannot move from {from} to {to}"), extra }
}

/// Checks the move against the transition table, then pushes the
/// `status_transition` job that performs it; answers 202 with the order.
async fn request_transition(
    state: &AppState,
    order_id: i64,
    expected_owner: Option<i64>,
    to: OrderStatus,
    allowed_from: &[OrderStatus],
    actor: String,
    reason: Option<String>,
) -> Result<Response, ApiError> {
    let mut tx = begin_write(&state.pool).await?;
    let order = orders::get_order_row(&mut tx, order_id)
        .await?
        .filter(|o| expected_owner.is_none_or(|owner| owner == o.user_id))
        .ok_or_else(|| ApiError::NotFound("order not found".into()))?;
    if !order.status.can_move_to(to) || !allowed_from.contains(&order.status) {
        let allowed: Vec<OrderStatus> =
            order.status.allowed_next().iter().copied().filter(|next| *next != OrderStatus::Confirmed).collect();
        return Err(illegal_move(order.status, to, &allowed));
    }
    let transition = StatusTransition { order_id, from: order.status, to, actor, reason };
    orders::push_order_job(&mut tx, &transition).await.map_err(|e| ApiError::from(StoreError::from(e)))?;
    let view = orders::get_order_view(&mut tx, order_id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("order {order_id} vanished inside its transaction")))?;
    tx.commit().await?;
    tracing::info!(order_id, from = %order.status, %to, "status change requested");
    let mut response = (StatusCode::ACCEPTED, axum::Json(view)).into_response();
    if let Ok(location) = axum::http::HeaderValue::from_str(&format!("/orders/{order_id}")) {
        response.headers_mut().insert(axum::http::header::LOCATION, location);
    }
    Ok(response)
}

/// Move an order along its lifecycle (admin): confirmed → shipped →
/// delivered, or cancel a pending or confirmed order. Checked against the
/// transition table first (409 with the allowed moves); then performed by
/// the worker, which records the history and e-mails the customer.
#[utoipa::path(put, path = "/orders/{id}/status", tag = "orders",
    security(("bearer_auth" = [])),
    params(("id" = i64, Path, description = "Order number")),
    request_body = StatusChangeBody,
    responses(
        (status = 202, description = "Accepted; the move is being applied", body = OrderView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not an allowed move (`allowed` lists the moves)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown status", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(order_id = id, admin_id = admin.0.user_id))]
async fn set_status(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(id): Path<i64>,
    Json(body): Json<StatusChangeBody>,
) -> Result<Response, ApiError> {
    let to = OrderStatus::parse(body.status.trim()).map_err(|m| ApiError::invalid("status", &m))?;
    let reason = parse_reason(body.reason.as_deref())?;
    // Confirmation belongs to the payment pipeline: an admin cannot confirm an unpaid order.
    let allowed_from: &[OrderStatus] = match to {
        OrderStatus::Shipped => &[OrderStatus::Confirmed],
        OrderStatus::Delivered => &[OrderStatus::Shipped],
        OrderStatus::Cancelled => &[OrderStatus::Pending, OrderStatus::Confirmed],
        OrderStatus::Pending | OrderStatus::Confirmed => &[],
    };
    let reason = match to {
        OrderStatus::Cancelled => Some(reason.unwrap_or_else(|| CancelReason::AdminRequest.as_str().to_owned())),
        _ => reason,
    };
    request_transition(&state, id, None, to, allowed_from, format!("admin:{}", admin.0.user_id), reason).await
}

/// Cancel an order: its owner while it is pending or confirmed (an admin
/// likewise, for any order). Stock is restored and a captured payment
/// refunded by the worker; 409 once shipped or already cancelled.
#[utoipa::path(post, path = "/orders/{id}/cancel", tag = "orders",
    security(("bearer_auth" = [])),
    params(("id" = i64, Path, description = "Order number")),
    request_body(content = Option<CancelBody>, description = "Optional reason"),
    responses(
        (status = 202, description = "Accepted; the cancellation is being applied", body = OrderView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such order, or not the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Shipped, delivered or already cancelled", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(order_id = id, user_id = user.user_id))]
async fn cancel_order(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
    body: OptionalJson<CancelBody>,
) -> Result<Response, ApiError> {
    let given = parse_reason(body.0.unwrap_or_default().reason.as_deref())?;
    let (owner, actor, default_reason) = if user.is_admin() {
        (None, format!("admin:{}", user.user_id), CancelReason::AdminRequest)
    } else {
        (Some(user.user_id), format!("user:{}", user.user_id), CancelReason::CustomerRequest)
    };
    // The reason code stays machine-readable; a free-text reason goes to the history's actor note.
    let reason = Some(given.unwrap_or_else(|| default_reason.as_str().to_owned()));
    let allowed_from = [OrderStatus::Pending, OrderStatus::Confirmed];
    request_transition(&state, id, owner, OrderStatus::Cancelled, &allowed_from, actor, reason).await
}
