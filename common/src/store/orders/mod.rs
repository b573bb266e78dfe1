//! Orders: creation in the caller's unit of work (with its first jobs), the
//! views the API shows, stock reservation and release, and compare-and-set
//! status moves with their history.
//!
//! # Layout
//! - this file: rows and views, creating and reading orders, pushing jobs.
//! - [`stock`]: reserving an order's units and giving them back.
//! - [`moves`]: status moves with their history, stock release and e-mail.

pub mod moves;
pub mod stock;

use std::collections::HashMap;

use serde::Serialize;

use super::sql::{Bind, Statement, id_list, json_ids};
use crate::db::{Backend, DbConn, now_ms};
use crate::domain::order::OrderStatus;
use crate::jobs::{Notify, NotifyEvent, OrderJob, ReserveStock};
use crate::queue::{self, Enqueued, QueueError};

pub use moves::{Move, TransitionOutcome, apply_transition};
pub use stock::{ReserveOutcome, release_reservation, reserve_stock};

/// One requested line of a new order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestedLine {
    /// The product.
    pub product_id: i64,
    /// Units, already validated to 1–1000.
    pub quantity: i64,
}

/// An order to place.
#[derive(Clone, Copy, Debug)]
pub struct NewOrder<'a> {
    /// The customer.
    pub user_id: i64,
    /// Its lines, one per product.
    pub lines: &'a [RequestedLine],
    /// The payment method token.
    pub payment_method: &'a str,
    /// Who placed it: `user:ID` or `admin:ID`.
    pub actor: &'a str,
    /// The total the client saw; the order is refused if prices changed since.
    pub expected_total_cents: Option<i64>,
}

/// Why an order could not be created. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum CreateOrderError {
    /// A product does not exist or was deleted.
    #[error("product {0} not found")]
    UnknownProduct(i64),
    /// A line asks for more than is visibly in stock.
    #[error("only {available} of product {product_id} in stock")]
    NotEnoughStock {
        /// The product.
        product_id: i64,
        /// Units in stock.
        available: i64,
        /// Units asked for.
        requested: i64,
    },
    /// The products are priced in different currencies.
    #[error("the products are priced in different currencies")]
    MixedCurrencies,
    /// A line or the total does not fit in 64 bits.
    #[error("the order's total is too large")]
    TotalTooLarge,
    /// The client expected another total: prices changed since it looked.
    #[error("the total is now {current_total_cents}, not {expected_total_cents}")]
    TotalChanged {
        /// What the client sent.
        expected_total_cents: i64,
        /// What the order would cost now.
        current_total_cents: i64,
        /// Its currency.
        currency: String,
    },
    /// The job could not be pushed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

#[derive(sqlx::FromRow)]
struct PricedProduct {
    id: i64,
    name: String,
    price_cents: i64,
    currency: String,
    stock: i64,
}

/// Pushes a job for an order (linked to the order's timeline) in the
/// caller's transaction.
pub async fn push_order_job<J: OrderJob>(conn: &mut DbConn, job: &J) -> Result<Enqueued, QueueError> {
    queue::enqueue(conn, &job.to_job()?).await
}

/// Pushes several jobs of one order in one statement.
pub async fn push_order_jobs(conn: &mut DbConn, jobs: &[queue::NewJob]) -> Result<Vec<Enqueued>, QueueError> {
    queue::enqueue_many(conn, jobs).await
}

/// Creates a pending order with snapshotted names and prices, its creation
/// history row, its `reserve_stock` job and its "received" e-mail — all in
/// the caller's unit of work, so an acknowledged order always has its jobs.
/// Returns the order as written (nothing is read back).
pub async fn create_order(conn: &mut DbConn, new: &NewOrder<'_>) -> Result<OrderView, CreateOrderError> {
    let backend = Backend::of(conn);
    let ids: Vec<i64> = new.lines.iter().map(|line| line.product_id).collect();
    let sql = format!(
        "select id, name, price_cents, currency, stock from products where deleted_at is null and id in {}",
        id_list(backend, 1)
    );
    let products: HashMap<i64, PricedProduct> = sqlx::query_as::<_, PricedProduct>(sqlx::AssertSqlSafe(sql))
        .bind(json_ids(&ids))
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|product| (product.id, product))
        .collect();
    let mut items = Vec::with_capacity(new.lines.len());
    let mut total_cents: i64 = 0;
    let mut currency: Option<&str> = None;
    for line in new.lines {
        let product = products.get(&line.product_id).ok_or(CreateOrderError::UnknownProduct(line.product_id))?;
        if line.quantity > product.stock {
            return Err(CreateOrderError::NotEnoughStock {
                product_id: line.product_id,
                available: product.stock,
                requested: line.quantity,
            });
        }
        match currency {
            Some(c) if c != product.currency => return Err(CreateOrderError::MixedCurrencies),
            Some(_) => {}
            None => currency = Some(&product.currency),
        }
        let line_total_cents = product.price_cents.checked_mul(line.quantity).ok_or(CreateOrderError::TotalTooLarge)?;
        total_cents = total_cents.checked_add(line_total_cents).ok_or(CreateOrderError::TotalTooLarge)?;
        items.push(OrderItem {
            product_id: line.product_id,
            name: product.name.clone(),
            unit_price_cents: product.price_cents,
            quantity: line.quantity,
            line_total_cents,
        });
    }
    let currency = currency.unwrap_or_default().to_owned();
    if let Some(expected) = new.expected_total_cents
        && expected != total_cents
    {
        return Err(CreateOrderError::TotalChanged {
            expected_total_cents: expected,
            current_total_cents: total_cents,
            currency,
        });
    }
    let now = now_ms();
    let order_id: i64 = sqlx::query_scalar(
        "insert into orders (user_id, status, total_cents, currency, payment_method, created_at, updated_at)
         values ($1, 'pending', $2, $3, $4, $5, $5) returning id",
    )
    .bind(new.user_id)
    .bind(total_cents)
    .bind(&currency)
    .bind(new.payment_method)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    insert_items(conn, order_id, &items).await?;
    moves::insert_history(conn, order_id, None, OrderStatus::Pending, new.actor, None, None, now).await?;
    push_order_jobs(
        conn,
        &[ReserveStock { order_id }.to_job()?, Notify { order_id, event: NotifyEvent::Received }.to_job()?],
    )
    .await?;
    items.sort_by_key(|item| item.product_id);
    Ok(OrderView {
        order: OrderRow {
            id: order_id,
            user_id: new.user_id,
            status: OrderStatus::Pending,
            total_cents,
            currency,
            payment_method: new.payment_method.to_owned(),
            cancel_reason: None,
            cancel_note: None,
            created_at: now,
            updated_at: now,
        },
        items,
        payment: None,
        history: vec![HistoryEntry {
            from: None,
            to: OrderStatus::Pending,
            at: now,
            actor: new.actor.to_owned(),
            reason: None,
            note: None,
        }],
    })
}

/// Inserts an order's lines with one statement.
async fn insert_items(conn: &mut DbConn, order_id: i64, items: &[OrderItem]) -> Result<(), sqlx::Error> {
    let mut insert = Statement::new(
        "insert into order_items (order_id, product_id, name, unit_price_cents, quantity, line_total_cents) values ",
    );
    let order = insert.bind(Bind::Int(order_id));
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            insert.push(", ");
        }
        let product = insert.bind(Bind::Int(item.product_id));
        let name = insert.bind(Bind::Text(item.name.clone()));
        let price = insert.bind(Bind::Int(item.unit_price_cents));
        let quantity = insert.bind(Bind::Int(item.quantity));
        let total = insert.bind(Bind::Int(item.line_total_cents));
        insert.push(&format!("({order}, {product}, {name}, {price}, {quantity}, {total})"));
    }
    insert.query().execute(conn).await?;
    Ok(())
}

/// An order's row.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct OrderRow {
    /// Order number.
    pub id: i64,
    /// The customer.
    pub user_id: i64,
    /// Current status.
    pub status: OrderStatus,
    /// Sum of the line totals, in minor units.
    pub total_cents: i64,
    /// Currency of every amount in the order.
    pub currency: String,
    /// Payment method token given at checkout.
    pub payment_method: String,
    /// Why the order was cancelled, as a code: `out_of_stock`,
    /// `payment_declined`, `payment_failed`, `customer_request` or `admin_request`.
    pub cancel_reason: Option<String>,
    /// The words of whoever cancelled it, if they gave any.
    pub cancel_note: Option<String>,
    /// When the order was accepted.
    #[serde(with = "crate::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// Last change.
    #[serde(with = "crate::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

/// One line of an order, as priced when the order was placed.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct OrderItem {
    /// The product.
    pub product_id: i64,
    /// Its name when ordered.
    pub name: String,
    /// Its unit price when ordered.
    pub unit_price_cents: i64,
    /// Units.
    pub quantity: i64,
    /// `unit_price_cents × quantity`.
    pub line_total_cents: i64,
}

/// One status change.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// The status before (null when the order was created).
    #[sqlx(rename = "from_status")]
    pub from: Option<OrderStatus>,
    /// The status after.
    #[sqlx(rename = "to_status")]
    pub to: OrderStatus,
    /// When.
    #[serde(with = "crate::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    /// Who: `system`, `user:ID` or `admin:ID`.
    pub actor: String,
    /// For a cancellation, its reason code.
    pub reason: Option<String>,
    /// The words of whoever made the move, if they gave any.
    pub note: Option<String>,
}

/// The payment of an order as the customer sees it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PaymentSummary {
    /// `pending`, `captured`, `refunded`, `declined` or `failed`.
    pub status: String,
    /// The provider's reference.
    pub reference: Option<String>,
    /// Amount charged, in minor units.
    pub amount_cents: i64,
    /// The provider.
    pub provider: String,
    /// The refund's reference, once refunded.
    pub refund_reference: Option<String>,
}

/// An order with everything the owner may see.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct OrderView {
    /// The order's own fields.
    #[serde(flatten)]
    pub order: OrderRow,
    /// Its lines.
    pub items: Vec<OrderItem>,
    /// Its payment, once one was attempted.
    pub payment: Option<PaymentSummary>,
    /// Every status change, oldest first.
    pub history: Vec<HistoryEntry>,
}

const ORDER_COLUMNS: &str = "select id, user_id, status, total_cents, currency, payment_method, cancel_reason, \
    cancel_note, created_at, updated_at from orders";

/// An order's row.
pub async fn get_order_row(conn: &mut DbConn, order_id: i64) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{ORDER_COLUMNS} where id = $1")))
        .bind(order_id)
        .fetch_optional(conn)
        .await
}

/// An order's row with the status of its payment (`None` before any
/// charge was attempted), in one read.
pub async fn get_order_with_payment_status(
    conn: &mut DbConn,
    order_id: i64,
) -> Result<Option<(OrderRow, Option<String>)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        order: OrderRow,
        payment_status: Option<String>,
    }
    let row: Option<Row> = sqlx::query_as(
        "select o.id, o.user_id, o.status, o.total_cents, o.currency, o.payment_method, o.cancel_reason,
                o.cancel_note, o.created_at, o.updated_at, p.status as payment_status
         from orders o left join payments p on p.order_id = o.id where o.id = $1",
    )
    .bind(order_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| (row.order, row.payment_status)))
}

/// An order with its items, payment and history.
pub async fn get_order_view(conn: &mut DbConn, order_id: i64) -> Result<Option<OrderView>, sqlx::Error> {
    let Some(order) = get_order_row(&mut *conn, order_id).await? else {
        return Ok(None);
    };
    Ok(Some(complete_view(conn, order).await?))
}

/// An order's lines, by product.
pub async fn get_order_items(conn: &mut DbConn, order_id: i64) -> Result<Vec<OrderItem>, sqlx::Error> {
    sqlx::query_as(
        "select product_id, name, unit_price_cents, quantity, line_total_cents from order_items
         where order_id = $1 order by product_id",
    )
    .bind(order_id)
    .fetch_all(conn)
    .await
}

async fn complete_view(conn: &mut DbConn, order: OrderRow) -> Result<OrderView, sqlx::Error> {
    let items = get_order_items(&mut *conn, order.id).await?;
    let payment = sqlx::query_as(
        "select status, reference, amount_cents, provider, refund_reference from payments where order_id = $1",
    )
    .bind(order.id)
    .fetch_optional(&mut *conn)
    .await?;
    let history = sqlx::query_as(
        "select from_status, to_status, at, actor, reason, note from order_status_history
         where order_id = $1 order by id",
    )
    .bind(order.id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(OrderView { order, items, payment, history })
}

/// A user's orders, newest first, and how many they have in all.
pub async fn list_user_orders(
    conn: &mut DbConn,
    user_id: i64,
    limit: i64,
    offset: i64,
) -> Result<(Vec<OrderView>, i64), sqlx::Error> {
    let total: i64 = sqlx::query_scalar("select count(*) from orders where user_id = $1")
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?;
    let rows: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ORDER_COLUMNS} where user_id = $1 order by id desc limit $2 offset $3"
    )))
    .bind(user_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let mut views = Vec::with_capacity(rows.len());
    for row in rows {
        views.push(complete_view(&mut *conn, row).await?);
    }
    Ok((views, total))
}
