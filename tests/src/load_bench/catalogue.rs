//! The catalogue the search phase runs over (seeded deterministically, so
//! every run sees the same products) and the mix of searches.

use anyhow::Context;
use kassa_common::db::Db;

/// Deterministic pseudo-random numbers (a 64-bit LCG), so every run sees the
/// same catalogue.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: usize) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % bound as u64) as usize
    }
}

const ADJECTIVES: &[&str] = &[
    "vintage", "modern", "compact", "classic", "rustic", "sleek", "sturdy", "handmade", "foldable", "elegant",
    "minimal", "cosy", "bright", "portable", "premium", "soft", "heavy", "light", "round", "square",
];
const MATERIALS: &[&str] =
    &["oak", "walnut", "steel", "linen", "cotton", "leather", "glass", "ceramic", "bamboo", "wool", "brass", "marble"];
const NOUNS: &[&str] = &[
    "lamp", "table", "chair", "desk", "shelf", "mug", "bowl", "vase", "rug", "cushion", "blanket", "mirror", "clock",
    "stool", "bench", "basket", "kettle", "teapot", "jar", "tray", "planter", "candle", "frame", "hook", "cabinet",
    "sofa", "bed", "pillow", "towel", "curtain", "knife", "pan", "pot", "spoon", "board", "bottle", "bag", "backpack",
    "wallet", "watch",
];
const ROOMS: &[&str] = &["kitchen", "living room", "bedroom", "office", "garden", "bathroom", "hallway", "patio"];
const CATEGORIES: &[&str] =
    &["home", "kitchen", "garden", "office", "bath", "decor", "furniture", "textiles", "lighting", "accessories"];

/// Inserts `count` catalogue products in one transaction (SQLite's FTS
/// triggers or PostgreSQL's generated `tsvector` index them) plus one
/// product with a billion units for the orders; returns the latter's id.
pub(super) async fn seed_catalogue(db: &Db, count: usize) -> anyhow::Result<i64> {
    let mut rng = Lcg(42);
    let now = kassa_common::db::now_ms();
    let mut tx = db.begin_write().await.context("Failed to begin the catalogue transaction")?;
    for index in 0..count {
        let adjective = ADJECTIVES[rng.below(ADJECTIVES.len())];
        let material = MATERIALS[rng.below(MATERIALS.len())];
        let noun = NOUNS[rng.below(NOUNS.len())];
        let name = format!("{adjective} {material} {noun} {index}");
        let description = format!(
            "A {} {noun} in {material} for the {}. {} finish, {} design, made to last.",
            ADJECTIVES[rng.below(ADJECTIVES.len())],
            ROOMS[rng.below(ROOMS.len())],
            MATERIALS[rng.below(MATERIALS.len())],
            ADJECTIVES[rng.below(ADJECTIVES.len())],
        );
        let stock = if rng.below(10) == 0 { 0 } else { rng.below(500) as i64 + 1 };
        sqlx::query(
            "insert into products (name, description, price_cents, currency, stock, initial_stock, category, sku,
                                   created_at, updated_at)
             values ($1, $2, $3, 'USD', $4, $4, $5, $6, $7, $7)",
        )
        .bind(&name)
        .bind(&description)
        .bind(rng.below(50_000) as i64 + 100)
        .bind(stock)
        .bind(CATEGORIES[rng.below(CATEGORIES.len())])
        .bind(format!("SKU-{index:06}"))
        .bind(now - (count - index) as i64 * 1000)
        .execute(&mut *tx)
        .await
        .context("Failed to insert a product")?;
    }
    let hot_product_id: i64 = sqlx::query_scalar(
        "insert into products (name, description, price_cents, currency, stock, initial_stock, category, created_at,
                               updated_at)
         values ('Benchmark widget', 'Bought by every benchmark order', 1999, 'USD', 1000000000, 1000000000, 'bench', $1, $1)
         returning id",
    )
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .context("Failed to insert the benchmark product")?;
    tx.commit().await.context("Failed to commit the catalogue")?;
    Ok(hot_product_id)
}

/// The search mix: one word, two words, a prefix, filters, sorts, browsing.
pub(super) const SEARCHES: &[&str] = &[
    "/products/?q=lamp",
    "/products/?q=oak%20table",
    "/products/?q=cer",
    "/products/?q=chair&category=garden",
    "/products/?q=steel&min_price_cents=1000&max_price_cents=20000&sort=price_asc",
    "/products/?category=kitchen&sort=newest",
    "/products/?q=vintage%20linen&in_stock=true&sort=name",
    "/products/?sort=price_desc&limit=50",
    "/products/?q=handmade%20ceramic%20mug",
    "/products/?q=walnut&sort=newest&offset=40",
];
