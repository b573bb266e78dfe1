//! Orders: creation in the caller's transaction (with its first job), the
//! views the API shows, stock reservation and release, and compare-and-set
//! status moves with their history.

use serde::Serialize;
use sqlx::SqliteConnection;

use super::StoreError;
use crate::db::now_ms;
use crate::domain::order::{CancelReason, OrderStatus};
use crate::jobs::{Charge, Notify, NotifyEvent, OrderJob, ReserveStock};
use crate::queue::{self, Enqueued, QueueError};

/// One requested line of a new order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestedLine {
    /// The product.
    pub product_id: i64,
    /// Units, already validated to 1–1000.
    pub quantity: i64,
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
    /// The job could not be pushed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

#[derive(sqlx::FromRow)]
struct PricedProduct {
    name: String,
    price_cents: i64,
    currency: String,
    stock: i64,
}

/// Pushes a job for an order and links it to the order's timeline, in the
/// caller's transaction.
pub async fn push_order_job<J: OrderJob>(conn: &mut SqliteConnection, job: &J) -> Result<Enqueued, QueueError> {
    let enqueued = queue::enqueue(&mut *conn, &job.to_job()?).await?;
    if let Enqueued::Created(job_id) = enqueued {
        sqlx::query("insert or ignore into order_jobs (order_id, job_id) values (?, ?)")
            .bind(job.order_id())
            .bind(job_id.0)
            .execute(conn)
            .await
            .map_err(QueueError::from)?;
    }
    Ok(enqueued)
}

/// Creates a pending order with snapshotted names and prices, its creation
/// history row, and its `reserve_stock` job — all in the caller's
/// transaction, so an acknowledged order always has its job.
pub async fn create_order(
    conn: &mut SqliteConnection,
    user_id: i64,
    lines: &[RequestedLine],
    payment_method: &str,
    actor: &str,
) -> Result<i64, CreateOrderError> {
    let mut priced = Vec::with_capacity(lines.len());
    let mut total_cents: i64 = 0;
    let mut currency: Option<String> = None;
    for line in lines {
        let product: PricedProduct = sqlx::query_as(
            "select name, price_cents, currency, stock from products where id = ? and deleted_at is null",
        )
        .bind(line.product_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(CreateOrderError::UnknownProduct(line.product_id))?;
        if line.quantity > product.stock {
            return Err(CreateOrderError::NotEnoughStock {
                product_id: line.product_id,
                available: product.stock,
                requested: line.quantity,
            });
        }
        match &currency {
            Some(c) if *c != product.currency => return Err(CreateOrderError::MixedCurrencies),
            Some(_) => {}
            None => currency = Some(product.currency.clone()),
        }
        // Prices are bounded (1e12) and quantities (1e3) and lines (1e2): no overflow.
        let line_total = product.price_cents * line.quantity;
        total_cents += line_total;
        priced.push((line, product, line_total));
    }
    let now = now_ms();
    let order_id: i64 = sqlx::query_scalar(
        "insert into orders (user_id, status, total_cents, currency, payment_method, created_at, updated_at)
         values (?, 'pending', ?, ?, ?, ?, ?) returning id",
    )
    .bind(user_id)
    .bind(total_cents)
    .bind(currency.unwrap_or_default())
    .bind(payment_method)
    .bind(now)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    for (line, product, line_total) in priced {
        sqlx::query(
            "insert into order_items (order_id, product_id, name, unit_price_cents, quantity, line_total_cents)
             values (?, ?, ?, ?, ?, ?)",
        )
        .bind(order_id)
        .bind(line.product_id)
        .bind(&product.name)
        .bind(product.price_cents)
        .bind(line.quantity)
        .bind(line_total)
        .execute(&mut *conn)
        .await?;
    }
    insert_history(conn, order_id, None, OrderStatus::Pending, actor, None).await?;
    push_order_job(conn, &ReserveStock { order_id }).await?;
    push_order_job(conn, &Notify { order_id, event: NotifyEvent::Received }).await?;
    Ok(order_id)
}

async fn insert_history(
    conn: &mut SqliteConnection,
    order_id: i64,
    from: Option<OrderStatus>,
    to: OrderStatus,
    actor: &str,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query("insert into order_status_history (order_id, from_status, to_status, actor, reason, at) values (?, ?, ?, ?, ?, ?)")
        .bind(order_id)
        .bind(from)
        .bind(to)
        .bind(actor)
        .bind(reason)
        .bind(now_ms())
        .execute(conn)
        .await?;
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
    /// Why the order was cancelled, when it was.
    pub cancel_reason: Option<String>,
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
    /// Why, when a reason was given.
    pub reason: Option<String>,
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

const ORDER_COLUMNS: &str = "select id, user_id, status, total_cents, currency, payment_method, cancel_reason, created_at, updated_at from orders";

/// An order's row.
pub async fn get_order_row(conn: &mut SqliteConnection, order_id: i64) -> Result<Option<OrderRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{ORDER_COLUMNS} where id = ?")))
        .bind(order_id)
        .fetch_optional(conn)
        .await
}

/// An order with its items, payment and history.
pub async fn get_order_view(conn: &mut SqliteConnection, order_id: i64) -> Result<Option<OrderView>, sqlx::Error> {
    let Some(order) = get_order_row(&mut *conn, order_id).await? else {
        return Ok(None);
    };
    Ok(Some(complete_view(conn, order).await?))
}

async fn complete_view(conn: &mut SqliteConnection, order: OrderRow) -> Result<OrderView, sqlx::Error> {
    let items = sqlx::query_as(
        "select product_id, name, unit_price_cents, quantity, line_total_cents from order_items where order_id = ? order by product_id",
    )
    .bind(order.id)
    .fetch_all(&mut *conn)
    .await?;
    let payment = sqlx::query_as(
        "select status, reference, amount_cents, provider, refund_reference from payments where order_id = ?",
    )
    .bind(order.id)
    .fetch_optional(&mut *conn)
    .await?;
    let history = sqlx::query_as(
        "select from_status, to_status, at, actor, reason from order_status_history where order_id = ? order by id",
    )
    .bind(order.id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(OrderView { order, items, payment, history })
}

/// A user's orders, newest first, and how many they have in all.
pub async fn list_user_orders(
    conn: &mut SqliteConnection,
    user_id: i64,
    limit: i64,
    offset: i64,
) -> Result<(Vec<OrderView>, i64), sqlx::Error> {
    let total: i64 =
        sqlx::query_scalar("select count(*) from orders where user_id = ?").bind(user_id).fetch_one(&mut *conn).await?;
    let rows: Vec<OrderRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ORDER_COLUMNS} where user_id = ? order by id desc limit ? offset ?"
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

/// What `reserve_stock` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Every unit was taken from stock and the charge job pushed.
    Reserved,
    /// An earlier run already reserved; the charge job is ensured.
    AlreadyReserved,
    /// Some line was short: the order is now cancelled (`out_of_stock`), nothing taken.
    OutOfStock,
    /// The order is no longer pending (e.g. cancelled first); nothing done.
    NotPending(OrderStatus),
    /// No such order.
    Missing,
}

/// Reserves all of an order's units or none, records the reservation and
/// pushes `charge` — or cancels the order as out of stock. Run in a write
/// transaction: the decrements, the record and the next job commit together.
pub async fn reserve_stock(conn: &mut SqliteConnection, order_id: i64) -> Result<ReserveOutcome, StoreError> {
    let Some(order) = get_order_row(&mut *conn, order_id).await? else {
        return Ok(ReserveOutcome::Missing);
    };
    let reserved: Option<i64> = sqlx::query_scalar("select reserved_at from stock_reservations where order_id = ?")
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await?;
    if reserved.is_some() {
        if order.status == OrderStatus::Pending {
            push_order_job(conn, &Charge { order_id }).await?;
        }
        return Ok(ReserveOutcome::AlreadyReserved);
    }
    if order.status != OrderStatus::Pending {
        return Ok(ReserveOutcome::NotPending(order.status));
    }
    let short: Option<i64> = sqlx::query_scalar(
        "select i.product_id from order_items i join products p on p.id = i.product_id
         where i.order_id = ? and p.stock < i.quantity limit 1",
    )
    .bind(order_id)
    .fetch_optional(&mut *conn)
    .await?;
    if short.is_some() {
        apply_transition(
            conn,
            order_id,
            OrderStatus::Pending,
            OrderStatus::Cancelled,
            "system",
            Some(CancelReason::OutOfStock.as_str()),
        )
        .await?;
        return Ok(ReserveOutcome::OutOfStock);
    }
    // The conditional decrement is the last line of defence: with the write
    // lock held the check above already holds, and `stock >= 0` is a table check.
    let taken = sqlx::query(
        "update products set stock = stock - (select quantity from order_items where order_id = ?1 and product_id = products.id)
         where id in (select product_id from order_items where order_id = ?1)
           and stock >= (select quantity from order_items where order_id = ?1 and product_id = products.id)",
    )
    .bind(order_id)
    .execute(&mut *conn)
    .await?;
    let lines: i64 = sqlx::query_scalar("select count(*) from order_items where order_id = ?")
        .bind(order_id)
        .fetch_one(&mut *conn)
        .await?;
    if i64::try_from(taken.rows_affected()).unwrap_or(-1) != lines {
        return Err(StoreError::Invariant(format!("order {order_id}: stock changed under the write lock")));
    }
    sqlx::query("insert into stock_reservations (order_id, reserved_at) values (?, ?)")
        .bind(order_id)
        .bind(now_ms())
        .execute(&mut *conn)
        .await?;
    push_order_job(conn, &Charge { order_id }).await?;
    Ok(ReserveOutcome::Reserved)
}

/// Gives an order's reserved units back to stock, once. Returns whether
/// anything was released now.
pub async fn release_reservation(conn: &mut SqliteConnection, order_id: i64) -> Result<bool, sqlx::Error> {
    let released =
        sqlx::query("update stock_reservations set released_at = ? where order_id = ? and released_at is null")
            .bind(now_ms())
            .bind(order_id)
            .execute(&mut *conn)
            .await?;
    if released.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "update products set stock = stock + (select quantity from order_items where order_id = ?1 and product_id = products.id)
         where id in (select product_id from order_items where order_id = ?1)",
    )
    .bind(order_id)
    .execute(conn)
    .await?;
    Ok(true)
}

/// What a status move did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransitionOutcome {
    /// The order moved; history written (and stock released for a cancel).
    Applied,
    /// The order is already in the target status: a repeat, nothing done.
    AlreadyApplied,
    /// The order is in another status than `from`: a stale move, nothing done.
    Stale(OrderStatus),
    /// The move is not in the transition table.
    NotAllowed,
    /// No such order.
    Missing,
}

/// Moves an order `from → to` if it is still in `from` (compare-and-set),
/// writing the history row and pushing the customer's notification; a
/// cancellation also records the reason and releases reserved stock — all in
/// the caller's transaction.
pub async fn apply_transition(
    conn: &mut SqliteConnection,
    order_id: i64,
    from: OrderStatus,
    to: OrderStatus,
    actor: &str,
    reason: Option<&str>,
) -> Result<TransitionOutcome, StoreError> {
    if !from.can_move_to(to) {
        return Ok(TransitionOutcome::NotAllowed);
    }
    let cancel_reason = (to == OrderStatus::Cancelled).then_some(reason).flatten();
    let moved = sqlx::query(
        "update orders set status = ?, updated_at = ?, cancel_reason = coalesce(?, cancel_reason)
         where id = ? and status = ?",
    )
    .bind(to)
    .bind(now_ms())
    .bind(cancel_reason)
    .bind(order_id)
    .bind(from)
    .execute(&mut *conn)
    .await?;
    if moved.rows_affected() == 0 {
        let current: Option<OrderStatus> = sqlx::query_scalar("select status from orders where id = ?")
            .bind(order_id)
            .fetch_optional(&mut *conn)
            .await?;
        return Ok(match current {
            None => TransitionOutcome::Missing,
            Some(status) if status == to => TransitionOutcome::AlreadyApplied,
            Some(status) => TransitionOutcome::Stale(status),
        });
    }
    insert_history(conn, order_id, Some(from), to, actor, reason).await?;
    if to == OrderStatus::Cancelled {
        release_reservation(&mut *conn, order_id).await?;
    }
    push_order_job(conn, &Notify { order_id, event: NotifyEvent::for_status(to) }).await?;
    Ok(TransitionOutcome::Applied)
}
