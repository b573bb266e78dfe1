//! `/cart`: a shopper's cart and its checkout. The user comes from the
//! token; a `user_id` in the path is checked against it, never trusted
//! (another customer's cart is 403; admins may act on any cart).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::BTreeMap;

use kassa_common::db::DbConn;
use kassa_common::domain::order::{MAX_ORDER_LINES, MAX_QUANTITY, parse_payment_method, parse_quantity};
use kassa_common::store::carts::{self, AddLineError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::orders::{OrderSource, PlaceOrder, place_order};
use crate::auth::AuthUser;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, OptionalJson, Path};
use crate::idempotency::{IdempotencyKey, fingerprint};
use crate::state::AppState;

/// The `/cart` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_to_cart))
        .routes(routes!(get_cart))
        .routes(routes!(remove_line))
        .routes(routes!(checkout))
}

/// A line to add.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AddToCartBody {
    /// The product.
    pub product_id: i64,
    /// Units to add, 1–1000 (the line may hold at most 1000 and no more than the stock).
    pub quantity: i64,
}

/// One cart line with the product's current price and stock.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartItem {
    /// The product.
    pub product_id: i64,
    /// Its current name.
    pub name: String,
    /// Units in the cart.
    pub quantity: i64,
    /// Current unit price.
    pub unit_price_cents: i64,
    /// `unit_price_cents × quantity`.
    pub line_total_cents: i64,
    /// Units in stock now.
    pub available: i64,
}

/// A cart.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cart {
    /// Whose cart.
    pub user_id: i64,
    /// Its lines, oldest first.
    pub items: Vec<CartItem>,
    /// Sum of the line totals in `currency`.
    pub total_cents: i64,
    /// Currency of the amounts (of the first line; a cart holds one currency).
    pub currency: String,
    /// The sum per currency: one entry, unless a product's currency was
    /// changed after it was added (checkout then refuses the mix with 422).
    pub totals_by_currency: BTreeMap<String, i64>,
}

/// A checkout's options.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CheckoutBody {
    /// Payment method token (sandbox: `pm_card_visa`, `pm_card_chargeDeclined`, `pm_card_flaky`); default `pm_card_visa`.
    pub payment_method: Option<String>,
    /// The total the client showed the customer; if prices changed since,
    /// the checkout is refused with 409 and the current total.
    pub expected_total_cents: Option<i64>,
}

async fn load_cart(conn: &mut DbConn, user_id: i64, default_currency: &str) -> Result<Cart, ApiError> {
    let lines = carts::lines(conn, user_id).await?;
    let currency = lines.first().map_or_else(|| default_currency.to_owned(), |l| l.currency.clone());
    let mut totals_by_currency: BTreeMap<String, i64> = BTreeMap::new();
    let mut items = Vec::with_capacity(lines.len());
    for line in lines {
        // A cart holds at most 100 lines of at most 1,000 units at most
        // 10^12 minor units each: every sum fits in 64 bits.
        let line_total_cents = line.unit_price_cents.saturating_mul(line.quantity);
        let total = totals_by_currency.entry(line.currency.clone()).or_default();
        *total = total.saturating_add(line_total_cents);
        items.push(CartItem {
            product_id: line.product_id,
            name: line.name,
            quantity: line.quantity,
            unit_price_cents: line.unit_price_cents,
            line_total_cents,
            available: line.available,
        });
    }
    let total_cents = totals_by_currency.get(&currency).copied().unwrap_or(0);
    Ok(Cart { user_id, items, total_cents, currency, totals_by_currency })
}

fn check_owner(user: &AuthUser, user_id: i64) -> Result<(), ApiError> {
    if user.may_act_for(user_id) { Ok(()) } else { Err(ApiError::Forbidden("this is not your cart".into())) }
}

/// Add a product to the caller's cart (or add more of it).
#[utoipa::path(post, path = "/cart/", tag = "cart",
    security(("bearer_auth" = [])),
    request_body = AddToCartBody,
    responses(
        (status = 200, description = "The cart after the change", body = Cart),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown or deleted product", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "More than the available stock (`available` says how many)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid quantity, too many products, or a product in another currency than the cart's", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(user_id = user.user_id))]
async fn add_to_cart(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<AddToCartBody>,
) -> Result<axum::Json<Cart>, ApiError> {
    parse_quantity(body.quantity).map_err(|m| ApiError::invalid("quantity", &m))?;
    let (user_id, product_id, quantity) = (user.user_id, body.product_id, body.quantity);
    let default_currency = state.settings.default_currency.as_ref().to_owned();
    let cart = state
        .db
        .write(move |tx| {
            let default_currency = default_currency.clone();
            Box::pin(async move {
                carts::add_line(tx, user_id, product_id, quantity, MAX_QUANTITY, MAX_ORDER_LINES)
                    .await
                    .map_err(|e| add_line_error(e, product_id))?;
                load_cart(tx, user_id, &default_currency).await
            })
        })
        .await?;
    Ok(axum::Json(cart))
}

fn add_line_error(error: AddLineError, product_id: i64) -> ApiError {
    match error {
        AddLineError::UnknownProduct => ApiError::NotFound("product not found".into()),
        AddLineError::NotEnoughStock { available, requested } => {
            ApiError::not_enough_stock(product_id, available, requested)
        }
        AddLineError::TooMany { max } => {
            ApiError::invalid("quantity", &format!("a cart line holds at most {max} units"))
        }
        AddLineError::TooManyLines { max } => {
            ApiError::invalid("product_id", &format!("a cart holds at most {max} different products"))
        }
        AddLineError::MixedCurrencies { cart, product } => ApiError::invalid(
            "product_id",
            &format!("the cart is priced in {cart} and this product in {product}; a cart holds one currency"),
        ),
        AddLineError::Database(e) => e.into(),
    }
}

/// A user's cart (their own, or any for an admin).
#[utoipa::path(get, path = "/cart/{user_id}", tag = "cart",
    security(("bearer_auth" = [])),
    params(("user_id" = i64, Path, description = "Whose cart")),
    responses(
        (status = 200, description = "The cart", body = Cart),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another user's cart", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_cart(
    State(state): State<AppState>,
    user: AuthUser,
    Path(user_id): Path<i64>,
) -> Result<axum::Json<Cart>, ApiError> {
    check_owner(&user, user_id)?;
    let mut conn = state.db.pool().acquire().await?;
    Ok(axum::Json(load_cart(&mut conn, user_id, state.settings.default_currency.as_ref()).await?))
}

/// Remove a line from a cart.
#[utoipa::path(delete, path = "/cart/{user_id}/{product_id}", tag = "cart",
    security(("bearer_auth" = [])),
    params(("user_id" = i64, Path, description = "Whose cart"), ("product_id" = i64, Path, description = "The product")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another user's cart", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such line", body = Problem, content_type = "application/problem+json"),
    ))]
async fn remove_line(
    State(state): State<AppState>,
    user: AuthUser,
    Path((user_id, product_id)): Path<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    check_owner(&user, user_id)?;
    state
        .db
        .write(move |tx| {
            Box::pin(async move { carts::remove_line(tx, user_id, product_id).await.map_err(ApiError::from) })
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Turn a cart into an order: answered with 202 at once; stock, payment and
/// confirmation follow in the background.
#[utoipa::path(post, path = "/cart/{user_id}/checkout", tag = "cart",
    security(("bearer_auth" = [])),
    params(
        ("user_id" = i64, Path, description = "Whose cart"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body return the first response"),
    ),
    request_body(content = Option<CheckoutBody>, description = "Optional; an empty body means the default payment method"),
    responses(
        (status = 202, description = "Accepted; the order is pending", body = kassa_common::store::orders::OrderView,
         headers(("Location" = String, description = "The order's URL"))),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Another user's cart", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Empty cart, not enough stock, prices changed since `expected_total_cents`, or the same key in flight", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid body, or a reused key with another body", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(user_id = user_id))]
async fn checkout(
    State(state): State<AppState>,
    user: AuthUser,
    Path(user_id): Path<i64>,
    key: IdempotencyKey,
    OptionalJson(body): OptionalJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    check_owner(&user, user_id)?;
    let raw = body.unwrap_or_else(|| serde_json::json!({}));
    let options: CheckoutBody =
        serde_json::from_value(raw.clone()).map_err(|e| ApiError::invalid("body", &e.to_string()))?;
    let payment_method =
        parse_payment_method(options.payment_method.as_deref()).map_err(|m| ApiError::invalid("payment_method", &m))?;
    let request_fingerprint = fingerprint("POST", &format!("/cart/{user_id}/checkout"), &raw);
    let order = PlaceOrder {
        owner_id: user_id,
        source: OrderSource::Cart,
        payment_method,
        expected_total_cents: options.expected_total_cents,
        fingerprint: request_fingerprint,
    };
    place_order(&state, user, order, key).await
}
