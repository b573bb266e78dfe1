//! `/orders`: placing orders (202, then the worker pipeline takes over),
//! reading one's own orders. Ownership is enforced: another customer's order
//! is a 404, as if it did not exist.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use kassa_common::domain::order::{CancelReason, MAX_ORDER_LINES, OrderStatus, parse_payment_method, parse_quantity};
use kassa_common::domain::validation::ValidationErrors;
use kassa_common::jobs::StatusTransition;
use kassa_common::store::idempotency::{self, Claim, StoredResponse};
use kassa_common::store::notifications::{self, SentNotification};
use kassa_common::store::orders::{self, CreateOrderError, NewOrder, OrderView, RequestedLine};
use kassa_common::store::timeline::{self, TimelineEntry};
use kassa_common::store::{StoreError, carts, users};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{AdminUser, AuthUser};
use crate::error::{ApiError, Problem};
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::idempotency::{IdempotencyKey, fingerprint, replay, respond};
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
    /// The total the client showed the customer; if prices changed since,
    /// the order is refused with 409 and the current total.
    pub expected_total_cents: Option<i64>,
}

/// Where an order's lines come from.
#[derive(Clone, Debug)]
pub(crate) enum OrderSource {
    /// The owner's cart, cleared in the same transaction.
    Cart,
    /// Lines given in the request.
    Lines(Vec<RequestedLine>),
}

/// An order a request asks for, parsed and checked.
#[derive(Clone, Debug)]
pub(crate) struct PlaceOrder {
    /// Whose order.
    pub owner_id: i64,
    /// Its lines.
    pub source: OrderSource,
    /// The payment method token.
    pub payment_method: String,
    /// The total the client expects, if it says.
    pub expected_total_cents: Option<i64>,
    /// The request's fingerprint, for `Idempotency-Key`.
    pub fingerprint: String,
}

/// What the unit of work placing an order did.
enum Placed {
    /// A new order, with its JSON.
    Created { order_id: i64, body: serde_json::Value },
    /// The key's first response, stored by an earlier request.
    Stored(StoredResponse),
}

/// Places an order in one unit of work: the key's claim, the order, its
/// items, the cleared cart, the `reserve_stock` job and the key's response
/// commit together (see [`kassa_common::store::idempotency`] for why a
/// concurrent request with the same key, on any API process, finds the
/// first response instead of placing a second order). Answers 202 with the
/// order and its `Location` once all of it is durable.
pub(crate) async fn place_order(
    state: &AppState,
    caller: AuthUser,
    order: PlaceOrder,
    key: IdempotencyKey,
) -> Result<Response, ApiError> {
    if let Err(not_until) = state.checkout_limiter.check_key(&caller.user_id) {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
        metrics::counter!("kassa_rate_limited_requests_total", "scope" => "checkout").increment(1);
        return Err(ApiError::TooManyRequests { retry_after_secs: wait.as_secs().max(1) });
    }
    let guard = state.in_flight.claim(caller.user_id, key)?;
    let key = guard.key().map(str::to_owned);
    let caller_id = caller.user_id;
    let actor = if caller.is_admin() { format!("admin:{caller_id}") } else { format!("user:{caller_id}") };
    let ttl_ms = state.settings.idempotency_ttl_ms;
    let fingerprint = order.fingerprint.clone();
    let placed = state
        .db
        .write(move |tx| {
            let (order, key, actor) = (order.clone(), key.clone(), actor.clone());
            Box::pin(async move {
                if let Some(key) = &key
                    && let Claim::Stored(stored) =
                        idempotency::claim(tx, caller_id, key, &order.fingerprint, ttl_ms).await?
                {
                    return Ok(Placed::Stored(stored));
                }
                let lines = match &order.source {
                    OrderSource::Cart => {
                        let lines = carts::lines(tx, order.owner_id).await?;
                        if lines.is_empty() {
                            return Err(ApiError::conflict("the cart is empty"));
                        }
                        lines.iter().map(|l| RequestedLine { product_id: l.product_id, quantity: l.quantity }).collect()
                    }
                    OrderSource::Lines(lines) => lines.clone(),
                };
                let new = NewOrder {
                    user_id: order.owner_id,
                    lines: &lines,
                    payment_method: &order.payment_method,
                    actor: &actor,
                    expected_total_cents: order.expected_total_cents,
                };
                let view = orders::create_order(tx, &new).await.map_err(create_order_error)?;
                if let OrderSource::Cart = order.source {
                    carts::clear(tx, order.owner_id).await?;
                }
                let order_id = view.order.id;
                let body = serde_json::to_value(&view).map_err(|e| ApiError::Internal(e.into()))?;
                if let Some(key) = &key {
                    let stored = StoredResponse {
                        fingerprint: order.fingerprint.clone(),
                        status_code: i64::from(StatusCode::ACCEPTED.as_u16()),
                        response_body: body.to_string(),
                        location: Some(order_location(order_id)),
                    };
                    idempotency::complete(tx, caller_id, key, &stored).await?;
                }
                Ok(Placed::Created { order_id, body })
            })
        })
        .await?;
    drop(guard);
    match placed {
        Placed::Stored(stored) => replay(&stored, &fingerprint),
        Placed::Created { order_id, body } => {
            metrics::counter!("kassa_checkouts_accepted_total").increment(1);
            tracing::info!(order_id, user_id = caller_id, "order accepted");
            Ok(respond(StatusCode::ACCEPTED, &body, Some(&order_location(order_id))))
        }
    }
}

fn order_location(order_id: i64) -> String {
    format!("/orders/{order_id}")
}

fn create_order_error(error: CreateOrderError) -> ApiError {
    match error {
        CreateOrderError::UnknownProduct(id) => ApiError::NotFound(format!("product {id} not found")),
        CreateOrderError::NotEnoughStock { product_id, available, requested } => {
            ApiError::not_enough_stock(product_id, available, requested)
        }
        CreateOrderError::MixedCurrencies => ApiError::invalid("items", "all products must share one currency"),
        CreateOrderError::TotalTooLarge => ApiError::invalid("items", "the order's total is too large"),
        CreateOrderError::TotalChanged { expected_total_cents, current_total_cents, currency } => {
            let mut extra = serde_json::Map::new();
            extra.insert("expected_total_cents".into(), expected_total_cents.into());
            extra.insert("current_total_cents".into(), current_total_cents.into());
            extra.insert("currency".into(), currency.into());
            ApiError::Conflict {
                detail: format!(
                    "prices changed: the order now costs {current_total_cents}, not {expected_total_cents}"
                ),
                extra,
            }
        }
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
    // `None` once a product's total overflows: clients may send any i64.
    let mut merged: BTreeMap<i64, Option<i64>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        if item.quantity < 1 {
            errors.add(format!("items[{i}].quantity"), "must be at least 1");
        }
        let total = merged.entry(item.product_id).or_insert(Some(0));
        *total = total.and_then(|sum| sum.checked_add(item.quantity.max(0)));
    }
    if merged.len() > MAX_ORDER_LINES {
        errors.add("items", format!("must name at most {MAX_ORDER_LINES} products"));
    }
    let mut lines = Vec::with_capacity(merged.len());
    for (product_id, total) in merged {
        match total.map(parse_quantity) {
            Some(Ok(quantity)) => lines.push(RequestedLine { product_id, quantity }),
            Some(Err(message)) => errors.add("items", format!("product {product_id}: total quantity {message}")),
            None => errors.add("items", format!("product {product_id}: total quantity is too large to add up")),
        }
    }
    errors.finish()?;
    Ok(lines)
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
        (status = 409, description = "Not enough stock, prices changed since `expected_total_cents`, or the same key is in flight", body = Problem, content_type = "application/problem+json"),
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
        let mut conn = state.db.pool().acquire().await?;
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
    let order = PlaceOrder {
        owner_id,
        source: OrderSource::Lines(lines),
        payment_method,
        expected_total_cents: body.expected_total_cents,
        fingerprint: fingerprint("POST", "/orders/", &raw),
    };
    place_order(&state, user, order, key).await
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
    let mut conn = state.db.pool().acquire().await?;
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
    let mut conn = state.db.pool().acquire().await?;
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
    /// Why, in words: kept as a note in the history (and, for a
    /// cancellation, on the order); the cancellation's reason code is `admin_request`.
    pub reason: Option<String>,
}

/// A cancellation's optional reason.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CancelBody {
    /// Why, in words: kept as a note on the order and in its history; the
    /// cancellation's reason code is `customer_request` (`admin_request` for an admin).
    pub reason: Option<String>,
}

/// A person's free-text reason, kept as a note: at most 500 characters,
/// no control characters but line breaks, no bidi controls.
fn parse_note(reason: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(reason) = reason.map(str::trim).filter(|r| !r.is_empty()) else { return Ok(None) };
    if reason.chars().count() > 500 || reason.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::invalid("reason", "must be at most 500 characters without control characters"));
    }
    kassa_common::domain::text::reject_bidi_controls(reason).map_err(|m| ApiError::invalid("reason", &m))?;
    Ok(Some(reason.to_owned()))
}

/// A 409 naming the moves the order's status allows.
fn illegal_move(from: OrderStatus, to: OrderStatus, allowed: &[OrderStatus]) -> ApiError {
    let mut extra = serde_json::Map::new();
    extra.insert("current_status".into(), from.as_str().into());
    extra.insert("allowed".into(), allowed.iter().map(|s| serde_json::Value::from(s.as_str())).collect());
    ApiError::Conflict { detail: format!("an order cannot move from {from} to {to}"), extra }
}

/// A move a request asks for.
#[derive(Clone, Debug)]
struct RequestedMove {
    order_id: i64,
    /// For a customer's cancel: only their own order may be found.
    expected_owner: Option<i64>,
    to: OrderStatus,
    allowed_from: &'static [OrderStatus],
    actor: String,
    reason: Option<CancelReason>,
    note: Option<String>,
}

/// Checks the move against the transition table, then pushes the
/// `status_transition` job that performs it; answers 202 with the order.
async fn request_transition(state: &AppState, requested: RequestedMove) -> Result<Response, ApiError> {
    let order_id = requested.order_id;
    let (view, from) = state
        .db
        .write(move |tx| {
            let requested = requested.clone();
            Box::pin(async move {
                let order = orders::get_order_row(tx, requested.order_id)
                    .await?
                    .filter(|o| requested.expected_owner.is_none_or(|owner| owner == o.user_id))
                    .ok_or_else(|| ApiError::NotFound("order not found".into()))?;
                if !order.status.can_move_to(requested.to) || !requested.allowed_from.contains(&order.status) {
                    let allowed: Vec<OrderStatus> = order
                        .status
                        .allowed_next()
                        .iter()
                        .copied()
                        .filter(|next| *next != OrderStatus::Confirmed)
                        .collect();
                    return Err(illegal_move(order.status, requested.to, &allowed));
                }
                let transition = StatusTransition {
                    order_id: requested.order_id,
                    from: order.status,
                    to: requested.to,
                    actor: requested.actor,
                    reason: requested.reason.map(|reason| reason.as_str().to_owned()),
                    note: requested.note,
                };
                orders::push_order_job(tx, &transition).await.map_err(|e| ApiError::from(StoreError::from(e)))?;
                let view = orders::get_order_view(tx, requested.order_id).await?.ok_or_else(|| {
                    ApiError::Internal(anyhow::anyhow!("order {} vanished inside its transaction", requested.order_id))
                })?;
                Ok((view, order.status))
            })
        })
        .await?;
    tracing::info!(order_id, %from, to = %view.order.status, "status change requested");
    let body = serde_json::to_value(&view).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(respond(StatusCode::ACCEPTED, &body, Some(&order_location(order_id))))
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
    let note = parse_note(body.reason.as_deref())?;
    // Confirmation belongs to the payment pipeline: an admin cannot confirm an unpaid order.
    let allowed_from: &'static [OrderStatus] = match to {
        OrderStatus::Shipped => &[OrderStatus::Confirmed],
        OrderStatus::Delivered => &[OrderStatus::Shipped],
        OrderStatus::Cancelled => &[OrderStatus::Pending, OrderStatus::Confirmed],
        OrderStatus::Pending | OrderStatus::Confirmed => &[],
    };
    let requested = RequestedMove {
        order_id: id,
        expected_owner: None,
        to,
        allowed_from,
        actor: format!("admin:{}", admin.0.user_id),
        reason: (to == OrderStatus::Cancelled).then_some(CancelReason::AdminRequest),
        note,
    };
    request_transition(&state, requested).await
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
    let reason = body.0.unwrap_or_default().reason;
    if user.is_admin() {
        return admin_cancel(&state, &AdminUser(user), id, reason.as_deref()).await;
    }
    let actor = format!("user:{}", user.user_id);
    // The code is the closed-set reason of whoever asked; their words are the note.
    let requested = RequestedMove {
        order_id: id,
        expected_owner: Some(user.user_id),
        to: OrderStatus::Cancelled,
        allowed_from: &[OrderStatus::Pending, OrderStatus::Confirmed],
        reason: Some(CancelReason::requested_by(&actor)),
        actor,
        note: parse_note(reason.as_deref())?,
    };
    request_transition(&state, requested).await
}

/// An admin's cancellation of any pending or confirmed order, with their
/// words as the note: what `POST /orders/{id}/cancel` does for an admin and
/// what the operator console's cancel button does. Answers 202 with the order.
pub(crate) async fn admin_cancel(
    state: &AppState,
    admin: &AdminUser,
    id: i64,
    reason: Option<&str>,
) -> Result<Response, ApiError> {
    let actor = format!("admin:{}", admin.0.user_id);
    let requested = RequestedMove {
        order_id: id,
        expected_owner: None,
        to: OrderStatus::Cancelled,
        allowed_from: &[OrderStatus::Pending, OrderStatus::Confirmed],
        reason: Some(CancelReason::requested_by(&actor)),
        actor,
        note: parse_note(reason)?,
    };
    request_transition(state, requested).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(product_id: i64, quantity: i64) -> OrderLineBody {
        OrderLineBody { product_id, quantity }
    }

    #[test]
    fn duplicate_lines_are_merged() {
        let lines = parse_lines(&[line(7, 2), line(3, 1), line(7, 5)]).expect("valid");
        let merged: Vec<(i64, i64)> = lines.iter().map(|l| (l.product_id, l.quantity)).collect();
        assert_eq!(merged, [(3, 1), (7, 7)]);
    }

    #[test]
    fn merging_huge_quantities_is_a_validation_error_not_an_overflow() {
        let half = i64::MAX / 2 + 1;
        let errors = parse_lines(&[line(7, half), line(7, half), line(7, 1)]).expect_err("refused");
        assert_eq!(errors.0.len(), 1, "{errors:?}");
        assert_eq!(errors.0[0].field, "items");
        assert!(errors.0[0].message.contains("too large"), "{errors:?}");
    }
}
