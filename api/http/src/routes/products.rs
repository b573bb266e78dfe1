//! `/products`: the public catalogue with full-text search, and its admin writes.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use kassa_common::domain::product::{
    NewProduct, Product, ProductPatch, ProductQuery, ProductSort, RawProductFields, RawProductQuery,
};
use kassa_common::store::products;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AdminUser;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

/// The `/products` routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_products, create_product)).routes(routes!(
        get_product,
        update_product,
        delete_product
    ))
}

/// Product fields. All are required to create a product except
/// `description`, `currency` (default from config) and `sku`; to update, send
/// only the fields to change.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ProductBody {
    /// Display name, 1–200 characters, one line.
    #[schema(example = "Desk lamp")]
    pub name: Option<String>,
    /// Up to 5,000 characters.
    pub description: Option<String>,
    /// Unit price in minor units (cents); never a float.
    #[schema(example = 1999, minimum = 0)]
    pub price_cents: Option<i64>,
    /// ISO 4217 code.
    #[schema(example = "USD")]
    pub currency: Option<String>,
    /// Units on hand; admin changes are recorded as stock adjustments.
    #[schema(example = 25, minimum = 0)]
    pub stock: Option<i64>,
    /// Category, 1–64 characters.
    #[schema(example = "home")]
    pub category: Option<String>,
    /// Stock-keeping unit, unique.
    pub sku: Option<String>,
}

impl ProductBody {
    fn raw(&self) -> RawProductFields<'_> {
        RawProductFields {
            name: self.name.as_deref(),
            description: self.description.as_deref(),
            price_cents: self.price_cents,
            currency: self.currency.as_deref(),
            stock: self.stock,
            category: self.category.as_deref(),
            sku: self.sku.as_deref(),
        }
    }
}

/// Catalogue query parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CatalogueParams {
    /// Words to search for in name, description, category and SKU (prefix matching, all words required).
    pub q: Option<String>,
    /// Exact category (case-insensitive).
    pub category: Option<String>,
    /// Lowest unit price, inclusive.
    pub min_price_cents: Option<i64>,
    /// Highest unit price, inclusive.
    pub max_price_cents: Option<i64>,
    /// `true`: only products with stock; `false`: only sold-out products.
    pub in_stock: Option<bool>,
    /// Ordering; `relevance` (the default) means newest first when there is no `q`.
    pub sort: Option<ProductSort>,
    /// Page size, default 20, capped at 100.
    pub limit: Option<i64>,
    /// Results to skip.
    pub offset: Option<i64>,
}

/// One page of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductList {
    /// Products on this page.
    pub items: Vec<Product>,
    /// Products matching the query in all.
    pub total: i64,
    /// Page size used.
    pub limit: i64,
    /// Offset used.
    pub offset: i64,
}

/// Search and browse the catalogue.
#[utoipa::path(get, path = "/products/", tag = "products",
    params(CatalogueParams),
    responses(
        (status = 200, description = "A page of products", body = ProductList),
        (status = 422, description = "Invalid parameters", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all)]
async fn list_products(
    State(state): State<AppState>,
    Query(params): Query<CatalogueParams>,
) -> Result<axum::Json<ProductList>, ApiError> {
    let query = ProductQuery::parse(&RawProductQuery {
        q: params.q.as_deref(),
        category: params.category.as_deref(),
        min_price_cents: params.min_price_cents,
        max_price_cents: params.max_price_cents,
        in_stock: params.in_stock,
        sort: params.sort,
        limit: params.limit,
        offset: params.offset,
    })?;
    let mut conn = state.db.pool().acquire().await?;
    let page = products::search_products(&mut conn, &query).await?;
    Ok(axum::Json(ProductList { items: page.items, total: page.total, limit: query.limit, offset: query.offset }))
}

/// Add a product (admin).
#[utoipa::path(post, path = "/products/", tag = "products",
    security(("bearer_auth" = [])),
    request_body = ProductBody,
    responses(
        (status = 201, description = "Created", body = Product),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "SKU taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(admin_id = admin.0.user_id))]
async fn create_product(
    State(state): State<AppState>,
    admin: AdminUser,
    Json(body): Json<ProductBody>,
) -> Result<impl IntoResponse, ApiError> {
    let product = NewProduct::parse(&body.raw(), &state.settings.default_currency)?;
    let created = state
        .db
        .write(move |tx| {
            let product = product.clone();
            Box::pin(async move { products::insert_product(tx, &product).await.map_err(ApiError::from) })
        })
        .await?;
    let location =
        HeaderValue::from_str(&format!("/products/{}", created.id)).map_err(|e| ApiError::Internal(e.into()))?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], axum::Json(created)))
}

/// One product.
#[utoipa::path(get, path = "/products/{id}", tag = "products",
    params(("id" = i64, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 404, description = "No such product, or deleted", body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_product(State(state): State<AppState>, Path(id): Path<i64>) -> Result<axum::Json<Product>, ApiError> {
    let mut conn = state.db.pool().acquire().await?;
    products::get_product(&mut conn, id)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::NotFound("product not found".into()))
}

/// Change a product (admin); only the fields sent change.
#[utoipa::path(put, path = "/products/{id}", tag = "products",
    security(("bearer_auth" = [])),
    params(("id" = i64, Path, description = "Product id")),
    request_body = ProductBody,
    responses(
        (status = 200, description = "Updated", body = Product),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "SKU taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(product_id = id, admin_id = admin.0.user_id))]
async fn update_product(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(id): Path<i64>,
    Json(body): Json<ProductBody>,
) -> Result<axum::Json<Product>, ApiError> {
    let patch = ProductPatch::parse(&body.raw())?;
    let admin_id = admin.0.user_id;
    let updated = state
        .db
        .write(move |tx| {
            let patch = patch.clone();
            Box::pin(async move { products::update_product(tx, id, &patch, admin_id).await.map_err(ApiError::from) })
        })
        .await?;
    Ok(axum::Json(updated))
}

/// Remove a product from the catalogue (admin); past orders keep it.
#[utoipa::path(delete, path = "/products/{id}", tag = "products",
    security(("bearer_auth" = [])),
    params(("id" = i64, Path, description = "Product id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(product_id = id, admin_id = admin.0.user_id))]
async fn delete_product(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state
        .db
        .write(move |tx| Box::pin(async move { products::soft_delete_product(tx, id).await.map_err(ApiError::from) }))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
