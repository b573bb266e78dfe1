//! Shopping carts: one line per (user, product), checked against stock when added.

use sqlx::SqliteConnection;

use super::StoreError;
use crate::db::now_ms;

/// A cart line joined with its product's current name, price and stock.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CartLine {
    /// The product.
    pub product_id: i64,
    /// The product's current name.
    pub name: String,
    /// Units in the cart.
    pub quantity: i64,
    /// The product's current unit price.
    pub unit_price_cents: i64,
    /// The product's currency.
    pub currency: String,
    /// Units in stock now.
    pub available: i64,
}

/// Why a line could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddLineError {
    /// No such product, or it was deleted.
    #[error("product not found")]
    UnknownProduct,
    /// The line would hold more than the stock.
    #[error("only {available} in stock")]
    NotEnoughStock {
        /// Units in stock.
        available: i64,
        /// Units the line would hold.
        requested: i64,
    },
    /// The line would exceed the per-line maximum.
    #[error("a cart line holds at most {max} units")]
    TooMany {
        /// The maximum.
        max: i64,
    },
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Adds `quantity` units of a product to a user's cart (creating or growing
/// the line), refusing more than is in stock. Run in a write transaction.
pub async fn add_line(
    conn: &mut SqliteConnection,
    user_id: i64,
    product_id: i64,
    quantity: i64,
    max_line_quantity: i64,
) -> Result<(), AddLineError> {
    let stock: Option<i64> = sqlx::query_scalar("select stock from products where id = ? and deleted_at is null")
        .bind(product_id)
        .fetch_optional(&mut *conn)
        .await?;
    let available = stock.ok_or(AddLineError::UnknownProduct)?;
    let existing: i64 = sqlx::query_scalar("select quantity from cart_items where user_id = ? and product_id = ?")
        .bind(user_id)
        .bind(product_id)
        .fetch_optional(&mut *conn)
        .await?
        .unwrap_or(0);
    let requested = existing + quantity;
    if requested > max_line_quantity {
        return Err(AddLineError::TooMany { max: max_line_quantity });
    }
    if requested > available {
        return Err(AddLineError::NotEnoughStock { available, requested });
    }
    sqlx::query(
        "insert into cart_items (user_id, product_id, quantity, added_at) values (?, ?, ?, ?)
         on conflict (user_id, product_id) do update set quantity = excluded.quantity",
    )
    .bind(user_id)
    .bind(product_id)
    .bind(requested)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// A user's cart lines, oldest first.
pub async fn lines(conn: &mut SqliteConnection, user_id: i64) -> Result<Vec<CartLine>, sqlx::Error> {
    sqlx::query_as(
        "select c.product_id, p.name, c.quantity, p.price_cents as unit_price_cents, p.currency, p.stock as available
         from cart_items c join products p on p.id = c.product_id
         where c.user_id = ? and p.deleted_at is null
         order by c.added_at, c.product_id",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await
}

/// Removes one line; [`StoreError::NotFound`] when the cart has no such line.
pub async fn remove_line(conn: &mut SqliteConnection, user_id: i64, product_id: i64) -> Result<(), StoreError> {
    let done = sqlx::query("delete from cart_items where user_id = ? and product_id = ?")
        .bind(user_id)
        .bind(product_id)
        .execute(conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("cart line"));
    }
    Ok(())
}

/// Empties a user's cart.
pub async fn clear(conn: &mut SqliteConnection, user_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("delete from cart_items where user_id = ?").bind(user_id).execute(conn).await?;
    Ok(())
}
