//! The catalogue: products, their full-text search, and stock adjustments.

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::StoreError;
use crate::db::{is_unique_violation, now_ms};
use crate::domain::product::{NewProduct, Product, ProductPatch, ProductQuery, ProductSort};

const PRODUCT_COLUMNS: &str =
    "p.id, p.name, p.description, p.price_cents, p.currency, p.stock, p.category, p.sku, p.created_at, p.updated_at";

/// Relevance weights for name, description, category and SKU: a word in the
/// name counts ten times a word in the description.
const BM25_WEIGHTS: &str = "bm25(products_fts, 10.0, 1.0, 3.0, 5.0)";

fn sku_conflict(error: sqlx::Error) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::Conflict("a product with that sku already exists".into())
    } else {
        StoreError::Database(error)
    }
}

/// Adds a product; its full-text entry is written by trigger in the same transaction.
pub async fn insert_product(conn: &mut SqliteConnection, product: &NewProduct) -> Result<Product, StoreError> {
    let now = now_ms();
    sqlx::query_as(
        "insert into products (name, description, price_cents, currency, stock, initial_stock, category, sku, created_at, updated_at)
         values (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?8)
         returning id, name, description, price_cents, currency, stock, category, sku, created_at, updated_at",
    )
    .bind(&product.name)
    .bind(&product.description)
    .bind(product.price_cents)
    .bind(product.currency.as_ref())
    .bind(product.stock)
    .bind(&product.category)
    .bind(&product.sku)
    .bind(now)
    .fetch_one(conn)
    .await
    .map_err(sku_conflict)
}

/// A product that is still in the catalogue (not deleted).
pub async fn get_product(conn: &mut SqliteConnection, product_id: i64) -> Result<Option<Product>, sqlx::Error> {
    let sql = "select p.id, p.name, p.description, p.price_cents, p.currency, p.stock, p.category, p.sku, p.created_at, p.updated_at
               from products p where p.id = ? and p.deleted_at is null";
    sqlx::query_as(sql).bind(product_id).fetch_optional(conn).await
}

/// Applies a change to a product. A new stock level is recorded as a stock
/// adjustment by `actor_user_id` so the stock audit keeps holding; run this in
/// a write transaction so the read of the old level and the update agree.
pub async fn update_product(
    conn: &mut SqliteConnection,
    product_id: i64,
    patch: &ProductPatch,
    actor_user_id: i64,
) -> Result<Product, StoreError> {
    let current = get_product(&mut *conn, product_id).await?.ok_or(StoreError::NotFound("product"))?;
    let now = now_ms();
    let updated: Product = sqlx::query_as(
        "update products set
             name = coalesce(?2, name),
             description = coalesce(?3, description),
             price_cents = coalesce(?4, price_cents),
             currency = coalesce(?5, currency),
             stock = coalesce(?6, stock),
             category = coalesce(?7, category),
             sku = coalesce(?8, sku),
             updated_at = ?9
         where id = ?1 and deleted_at is null
         returning id, name, description, price_cents, currency, stock, category, sku, created_at, updated_at",
    )
    .bind(product_id)
    .bind(&patch.name)
    .bind(&patch.description)
    .bind(patch.price_cents)
    .bind(patch.currency.as_ref().map(AsRef::<str>::as_ref))
    .bind(patch.stock)
    .bind(&patch.category)
    .bind(&patch.sku)
    .bind(now)
    .fetch_one(&mut *conn)
    .await
    .map_err(sku_conflict)?;
    let delta = updated.stock - current.stock;
    if delta != 0 {
        record_adjustment(conn, product_id, delta, "admin update", Some(actor_user_id)).await?;
    }
    Ok(updated)
}

/// Records a change of stock made outside the order pipeline.
pub async fn record_adjustment(
    conn: &mut SqliteConnection,
    product_id: i64,
    delta: i64,
    reason: &str,
    actor_user_id: Option<i64>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into stock_adjustments (product_id, delta, reason, actor_user_id, created_at) values (?, ?, ?, ?, ?)",
    )
    .bind(product_id)
    .bind(delta)
    .bind(reason)
    .bind(actor_user_id)
    .bind(now_ms())
    .execute(conn)
    .await?;
    Ok(())
}

/// Hides a product from the catalogue; orders that reference it keep it.
pub async fn soft_delete_product(conn: &mut SqliteConnection, product_id: i64) -> Result<(), StoreError> {
    let now = now_ms();
    let done = sqlx::query("update products set deleted_at = ?, updated_at = ? where id = ? and deleted_at is null")
        .bind(now)
        .bind(now)
        .bind(product_id)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound("product"));
    }
    // A deleted product can no longer be bought: drop it from every cart.
    sqlx::query("delete from cart_items where product_id = ?").bind(product_id).execute(conn).await?;
    Ok(())
}

/// One page of catalogue results and how many match in all.
#[derive(Clone, Debug)]
pub struct ProductPage {
    /// The products on this page.
    pub items: Vec<Product>,
    /// All products matching the query.
    pub total: i64,
}

/// Searches the catalogue: full-text match ranked by BM25 when the query has
/// words, combined with every filter, ordered and paginated.
pub async fn search_products(conn: &mut SqliteConnection, query: &ProductQuery) -> Result<ProductPage, sqlx::Error> {
    let mut count = QueryBuilder::<Sqlite>::new("select count(*) from products p");
    push_filters(&mut count, query);
    let total: i64 = count.build_query_scalar().fetch_one(&mut *conn).await?;

    let mut select = QueryBuilder::<Sqlite>::new(format!("select {PRODUCT_COLUMNS} from products p"));
    push_filters(&mut select, query);
    let order = match (query.sort, query.fts_match.is_some()) {
        (ProductSort::Relevance, true) => format!("{BM25_WEIGHTS}, p.id"),
        (ProductSort::Relevance, false) | (ProductSort::Newest, _) => "p.created_at desc, p.id desc".into(),
        (ProductSort::PriceAsc, _) => "p.price_cents asc, p.id".into(),
        (ProductSort::PriceDesc, _) => "p.price_cents desc, p.id".into(),
        (ProductSort::Name, _) => "p.name collate nocase, p.id".into(),
    };
    select.push(" order by ").push(order);
    select.push(" limit ").push_bind(query.limit);
    select.push(" offset ").push_bind(query.offset);
    let items = select.build_query_as().fetch_all(conn).await?;
    Ok(ProductPage { items, total })
}

fn push_filters(builder: &mut QueryBuilder<Sqlite>, query: &ProductQuery) {
    if let Some(fts) = &query.fts_match {
        builder.push(" join products_fts on products_fts.rowid = p.id and products_fts match ");
        builder.push_bind(fts.clone());
    }
    builder.push(" where p.deleted_at is null");
    if let Some(category) = &query.category {
        builder.push(" and p.category = ").push_bind(category.clone()).push(" collate nocase");
    }
    if let Some(min) = query.min_price_cents {
        builder.push(" and p.price_cents >= ").push_bind(min);
    }
    if let Some(max) = query.max_price_cents {
        builder.push(" and p.price_cents <= ").push_bind(max);
    }
    match query.in_stock {
        Some(true) => builder.push(" and p.stock > 0"),
        Some(false) => builder.push(" and p.stock = 0"),
        None => builder,
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{DbArgs, Durability};
    use crate::domain::money::Currency;
    use crate::domain::product::{RawProductQuery, fts5_match_expression};

    async fn pool() -> (tempfile::TempDir, sqlx::SqlitePool) {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = DbArgs::in_dir(dir.path(), Durability::Normal);
        let pool = args.connect_and_migrate().await.expect("db");
        (dir, pool)
    }

    fn product(name: &str, description: &str, price_cents: i64, category: &str) -> NewProduct {
        NewProduct {
            name: name.into(),
            description: description.into(),
            price_cents,
            currency: Currency::parse("USD").expect("valid"),
            stock: 3,
            category: category.into(),
            sku: None,
        }
    }

    #[tokio::test]
    async fn name_matches_rank_above_description_matches() {
        let (_dir, pool) = pool().await;
        let mut conn = pool.acquire().await.expect("conn");
        insert_product(&mut conn, &product("Desk", "holds a lamp", 100, "home")).await.expect("insert");
        insert_product(&mut conn, &product("Lamp", "bright", 200, "home")).await.expect("insert");
        insert_product(&mut conn, &product("Chair", "comfy", 300, "home")).await.expect("insert");
        let query = ProductQuery::parse(&RawProductQuery { q: Some("lam"), ..Default::default() }).expect("query");
        let page = search_products(&mut conn, &query).await.expect("search");
        let names: Vec<_> = page.items.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Lamp", "Desk"]);
        assert_eq!(page.total, 2);
    }

    #[tokio::test]
    async fn renamed_and_deleted_products_leave_the_index() {
        let (_dir, pool) = pool().await;
        let mut conn = pool.acquire().await.expect("conn");
        let lamp = insert_product(&mut conn, &product("Lamp", "", 100, "home")).await.expect("insert");
        let patch = ProductPatch { name: Some("Torch".into()), ..Default::default() };
        let user = sqlx::query_scalar::<_, i64>(
            "insert into users (username, email, password_hash, role, created_at) values ('a','a@b.c','x','admin',0) returning id",
        )
        .fetch_one(&mut *conn)
        .await
        .expect("user");
        update_product(&mut conn, lamp.id, &patch, user).await.expect("update");
        let search = |q: &str| ProductQuery { fts_match: fts5_match_expression(q), limit: 10, ..Default::default() };
        assert_eq!(search_products(&mut conn, &search("lamp")).await.expect("search").total, 0);
        assert_eq!(search_products(&mut conn, &search("torch")).await.expect("search").total, 1);
        soft_delete_product(&mut conn, lamp.id).await.expect("delete");
        assert_eq!(search_products(&mut conn, &search("torch")).await.expect("search").total, 0);
    }
}
