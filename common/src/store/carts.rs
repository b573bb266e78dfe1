//! Shopping carts: one line per (user, product), checked against stock when added.

use crate::db::DbConn;

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
    /// The cart already holds the most products a cart may hold.
    #[error("a cart holds at most {max} products")]
    TooManyLines {
        /// The maximum.
        max: usize,
    },
    /// The product is priced in another currency than the cart's lines.
    #[error("the cart is priced in {cart}, the product in {product}")]
    MixedCurrencies {
        /// The cart's currency.
        cart: String,
        /// The product's.
        product: String,
    },
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Adds `quantity` units of a product to a user's cart (creating or growing
/// the line), refusing more than is in stock, more than `max_lines`
/// products, and a product priced in another currency than the cart's
/// lines (checkout would refuse the mix). Run it in a unit of work.
pub async fn add_line(
    conn: &mut DbConn,
    user_id: i64,
    product_id: i64,
    quantity: i64,
    max_line_quantity: i64,
    max_lines: usize,
) -> Result<(), AddLineError> {
    let product: Option<(i64, String)> =
        sqlx::query_as("select stock, currency from products where id = $1 and deleted_at is null")
            .bind(product_id)
            .fetch_optional(&mut *conn)
            .await?;
    let (available, currency) = product.ok_or(AddLineError::UnknownProduct)?;
    let others: Vec<(i64, String)> = sqlx::query_as(
        "select c.product_id, p.currency from cart_items c join products p on p.id = c.product_id
         where c.user_id = $1 and p.deleted_at is null",
    )
    .bind(user_id)
    .fetch_all(&mut *conn)
    .await?;
    if let Some((_, cart)) = others.iter().find(|(id, other)| *id != product_id && *other != currency) {
        return Err(AddLineError::MixedCurrencies { cart: cart.clone(), product: currency });
    }
    if others.len() >= max_lines && !others.iter().any(|(id, _)| *id == product_id) {
        return Err(AddLineError::TooManyLines { max: max_lines });
    }
    let existing: i64 = sqlx::query_scalar("select quantity from cart_items where user_id = $1 and product_id = $2")
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
        "insert into cart_items (user_id, product_id, quantity, added_at) values ($1, $2, $3, $4)
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
pub async fn lines(conn: &mut DbConn, user_id: i64) -> Result<Vec<CartLine>, sqlx::Error> {
    sqlx::query_as(
        "select c.product_id, p.name, c.quantity, p.price_cents as unit_price_cents, p.currency, p.stock as available
         from cart_items c join products p on p.id = c.product_id
         where c.user_id = $1 and p.deleted_at is null
         order by c.added_at, c.product_id",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await
}

/// Removes one line; [`StoreError::NotFound`] when the cart has no such line.
pub async fn remove_line(conn: &mut DbConn, user_id: i64, product_id: i64) -> Result<(), StoreError> {
    let done = sqlx::query("delete from cart_items where user_id = $1 and product_id = $2")
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
pub async fn clear(conn: &mut DbConn, user_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("delete from cart_items where user_id = $1").bind(user_id).execute(conn).await?;
    Ok(())
}
