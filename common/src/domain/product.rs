//! Catalogue values: a new product, a change to one, and a catalogue query.

use serde::{Deserialize, Serialize};

use super::money::{Currency, parse_price_cents};
use super::text::reject_bidi_controls;
use super::validation::ValidationErrors;

/// Most units a product may hold in stock.
pub const MAX_STOCK: i64 = 1_000_000_000;
/// Most results one catalogue page returns.
pub const MAX_PAGE_LIMIT: i64 = 100;
/// Results per page when the client does not say.
pub const DEFAULT_PAGE_LIMIT: i64 = 20;

/// A product as the catalogue shows it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Product {
    /// Identifier.
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Longer text, searched with lower weight than the name.
    pub description: String,
    /// Unit price in minor units.
    pub price_cents: i64,
    /// Currency of the price.
    pub currency: String,
    /// Units available to order.
    pub stock: i64,
    /// Category, matched exactly by the `category` filter.
    pub category: String,
    /// Stock-keeping unit, unique when set.
    pub sku: Option<String>,
    /// Creation time.
    #[serde(with = "crate::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// Last change.
    #[serde(with = "crate::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

/// A validated product to add to the catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewProduct {
    /// Display name.
    pub name: String,
    /// Description, possibly empty.
    pub description: String,
    /// Unit price in minor units.
    pub price_cents: i64,
    /// Currency of the price.
    pub currency: Currency,
    /// Units on hand.
    pub stock: i64,
    /// Category.
    pub category: String,
    /// Optional stock-keeping unit.
    pub sku: Option<String>,
}

/// Fields of a product to change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProductPatch {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New unit price.
    pub price_cents: Option<i64>,
    /// New currency.
    pub currency: Option<Currency>,
    /// New stock level; the difference is recorded as a stock adjustment.
    pub stock: Option<i64>,
    /// New category.
    pub category: Option<String>,
    /// New stock-keeping unit.
    pub sku: Option<String>,
}

/// Product fields as a client sends them, before validation.
#[derive(Clone, Debug, Default)]
pub struct RawProductFields<'a> {
    /// `name`
    pub name: Option<&'a str>,
    /// `description`
    pub description: Option<&'a str>,
    /// `price_cents`
    pub price_cents: Option<i64>,
    /// `currency`
    pub currency: Option<&'a str>,
    /// `stock`
    pub stock: Option<i64>,
    /// `category`
    pub category: Option<&'a str>,
    /// `sku`
    pub sku: Option<&'a str>,
}

impl NewProduct {
    /// Validates a new product; `default_currency` applies when none is given.
    pub fn parse(raw: &RawProductFields<'_>, default_currency: &Currency) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let name = required(&mut errors, "name", raw.name).and_then(|v| errors.check("name", parse_name(v)));
        let description = errors.check("description", parse_description(raw.description.unwrap_or("")));
        let price_cents = match raw.price_cents {
            Some(cents) => errors.check("price_cents", parse_price_cents(cents)),
            None => required(&mut errors, "price_cents", None::<i64>),
        };
        let currency = match raw.currency {
            Some(code) => errors.check("currency", Currency::parse(code)),
            None => Some(default_currency.clone()),
        };
        let stock = match raw.stock {
            Some(stock) => errors.check("stock", parse_stock(stock)),
            None => required(&mut errors, "stock", None::<i64>),
        };
        let category =
            required(&mut errors, "category", raw.category).and_then(|v| errors.check("category", parse_category(v)));
        let sku = raw.sku.and_then(|v| errors.check("sku", parse_sku(v)));
        errors.clone().finish()?;
        match (name, description, price_cents, currency, stock, category) {
            (Some(name), Some(description), Some(price_cents), Some(currency), Some(stock), Some(category)) => {
                Ok(Self { name, description, price_cents, currency, stock, category, sku })
            }
            _ => Err(errors),
        }
    }
}

impl ProductPatch {
    /// Validates a change; absent fields stay unchanged.
    pub fn parse(raw: &RawProductFields<'_>) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let patch = Self {
            name: raw.name.and_then(|v| errors.check("name", parse_name(v))),
            description: raw.description.and_then(|v| errors.check("description", parse_description(v))),
            price_cents: raw.price_cents.and_then(|v| errors.check("price_cents", parse_price_cents(v))),
            currency: raw.currency.and_then(|v| errors.check("currency", Currency::parse(v))),
            stock: raw.stock.and_then(|v| errors.check("stock", parse_stock(v))),
            category: raw.category.and_then(|v| errors.check("category", parse_category(v))),
            sku: raw.sku.and_then(|v| errors.check("sku", parse_sku(v))),
        };
        errors.finish()?;
        Ok(patch)
    }
}

fn required<T>(errors: &mut ValidationErrors, field: &str, value: Option<T>) -> Option<T> {
    if value.is_none() {
        errors.add(field, "is required");
    }
    value
}

/// Text shown in e-mail subjects and lists: no control characters, so a
/// product name can never smuggle a line break into a header, and no
/// bidirectional controls, so it cannot reorder what a reader sees.
fn single_line(value: &str, field_max: usize) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.chars().count() > field_max {
        return Err(format!("must be at most {field_max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters or line breaks".into());
    }
    reject_bidi_controls(value)?;
    Ok(value.to_owned())
}

fn parse_name(value: &str) -> Result<String, String> {
    single_line(value, 200)
}

fn parse_category(value: &str) -> Result<String, String> {
    single_line(value, 64)
}

fn parse_description(value: &str) -> Result<String, String> {
    if value.chars().count() > 5000 {
        return Err("must be at most 5000 characters".into());
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err("must not contain control characters".into());
    }
    reject_bidi_controls(value)?;
    Ok(value.trim().replace("\r\n", "\n"))
}

fn parse_sku(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() || value.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Err("may contain only letters, digits, '-', '_' and '.'".into());
    }
    Ok(value.to_owned())
}

fn parse_stock(stock: i64) -> Result<i64, String> {
    if stock < 0 {
        Err("must not be negative".into())
    } else if stock > MAX_STOCK {
        Err(format!("must be at most {MAX_STOCK}"))
    } else {
        Ok(stock)
    }
}

/// How catalogue results are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProductSort {
    /// Best full-text match first (newest first without `q`).
    #[default]
    Relevance,
    /// Cheapest first.
    PriceAsc,
    /// Dearest first.
    PriceDesc,
    /// Most recently added first.
    Newest,
    /// Alphabetical by name.
    Name,
}

/// A validated catalogue query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProductQuery {
    /// The client's search words, lower-cased (at most 16); each matches as a prefix.
    pub terms: Vec<String>,
    /// Exact category.
    pub category: Option<String>,
    /// Lowest price, inclusive.
    pub min_price_cents: Option<i64>,
    /// Highest price, inclusive.
    pub max_price_cents: Option<i64>,
    /// Only products with stock (true) or only without (false).
    pub in_stock: Option<bool>,
    /// Ordering.
    pub sort: ProductSort,
    /// Page size, 1–100.
    pub limit: i64,
    /// Results to skip.
    pub offset: i64,
}

/// Catalogue query parameters as a client sends them.
#[derive(Clone, Debug, Default)]
pub struct RawProductQuery<'a> {
    /// `q`
    pub q: Option<&'a str>,
    /// `category`
    pub category: Option<&'a str>,
    /// `min_price_cents`
    pub min_price_cents: Option<i64>,
    /// `max_price_cents`
    pub max_price_cents: Option<i64>,
    /// `in_stock`
    pub in_stock: Option<bool>,
    /// `sort`
    pub sort: Option<ProductSort>,
    /// `limit`
    pub limit: Option<i64>,
    /// `offset`
    pub offset: Option<i64>,
}

impl ProductQuery {
    /// Validates a catalogue query. `limit` above 100 is capped at 100.
    pub fn parse(raw: &RawProductQuery<'_>) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        if raw.q.is_some_and(|q| q.chars().count() > 200) {
            errors.add("q", "must be at most 200 characters");
        }
        for (field, value) in [("min_price_cents", raw.min_price_cents), ("max_price_cents", raw.max_price_cents)] {
            if let Some(cents) = value {
                errors.check(field, parse_price_cents(cents));
            }
        }
        if let (Some(min), Some(max)) = (raw.min_price_cents, raw.max_price_cents)
            && min > max
        {
            errors.add("min_price_cents", "must not exceed max_price_cents");
        }
        let limit = raw.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
        if limit < 1 {
            errors.add("limit", "must be at least 1");
        }
        let offset = raw.offset.unwrap_or(0);
        if !(0..=1_000_000).contains(&offset) {
            errors.add("offset", "must be between 0 and 1000000");
        }
        errors.finish()?;
        Ok(Self {
            terms: raw.q.map(search_terms).unwrap_or_default(),
            category: raw.category.map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned),
            min_price_cents: raw.min_price_cents,
            max_price_cents: raw.max_price_cents,
            in_stock: raw.in_stock,
            sort: raw.sort.unwrap_or_default(),
            limit: limit.min(MAX_PAGE_LIMIT),
            offset,
        })
    }
}

/// The words of free text: runs of letters and digits, lower-cased, at
/// most 16. Everything else (quotes, `NEAR`, `*`, `:`, `&`, `!`,
/// parentheses, `-`) separates words and is never interpreted.
pub fn search_terms(q: &str) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric()).filter(|word| !word.is_empty()).take(16).map(str::to_lowercase).collect()
}

/// Turns free text into a safe SQLite FTS5 expression: every word becomes a
/// quoted prefix term, all required, so no query can make the match fail.
/// `None` when there is no word.
pub fn fts5_match_expression(q: &str) -> Option<String> {
    fts5_match(&search_terms(q))
}

/// The FTS5 expression for search terms (see [`fts5_match_expression`]).
pub fn fts5_match(terms: &[String]) -> Option<String> {
    let quoted: Vec<String> = terms.iter().map(|term| format!("\"{term}\"*")).collect();
    if quoted.is_empty() { None } else { Some(quoted.join(" ")) }
}

/// The PostgreSQL `tsquery` for search terms: every word a quoted prefix
/// lexeme, all required (`'lam':* & 'desk':*`). Terms hold only letters and
/// digits, so quoting cannot be broken. `None` when there is no word.
pub fn tsquery_match(terms: &[String]) -> Option<String> {
    let quoted: Vec<String> = terms.iter().map(|term| format!("'{term}':*")).collect();
    if quoted.is_empty() { None } else { Some(quoted.join(" & ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::parse("USD").expect("valid")
    }

    #[test]
    fn a_complete_product_parses_with_the_default_currency() {
        let raw = RawProductFields {
            name: Some(" Desk lamp "),
            price_cents: Some(1999),
            stock: Some(5),
            category: Some("home"),
            ..Default::default()
        };
        let product = NewProduct::parse(&raw, &usd()).expect("valid");
        assert_eq!(product.name, "Desk lamp");
        assert_eq!(product.currency, usd());
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let raw = RawProductFields {
            name: Some("Lamp\r\nBcc: x"),
            price_cents: Some(-1),
            stock: Some(-5),
            currency: Some("dollars"),
            ..Default::default()
        };
        let errors = NewProduct::parse(&raw, &usd()).unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "price_cents", "currency", "stock", "category"]);
    }

    #[test]
    fn shown_text_refuses_bidirectional_controls() {
        let raw = RawProductFields {
            name: Some("Lamp\u{202E}gpj.exe"),
            description: Some("Warm \u{2066}light\u{2069}"),
            category: Some("home\u{200F}"),
            price_cents: Some(100),
            stock: Some(1),
            ..Default::default()
        };
        let errors = NewProduct::parse(&raw, &usd()).unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "description", "category"]);
        assert!(errors.0[0].message.contains("U+202E"), "{errors:?}");
        let patch = RawProductFields { name: Some("\u{061C}Lamp"), ..Default::default() };
        assert!(ProductPatch::parse(&patch).is_err());
    }

    #[test]
    fn a_patch_validates_only_given_fields() {
        let patch = ProductPatch::parse(&RawProductFields { stock: Some(3), ..Default::default() }).expect("valid");
        assert_eq!(patch.stock, Some(3));
        assert!(ProductPatch::parse(&RawProductFields { price_cents: Some(-3), ..Default::default() }).is_err());
    }

    #[test]
    fn queries_cap_the_limit_and_reject_inverted_ranges() {
        let q = ProductQuery::parse(&RawProductQuery { limit: Some(1000), ..Default::default() }).expect("valid");
        assert_eq!(q.limit, MAX_PAGE_LIMIT);
        assert!(ProductQuery::parse(&RawProductQuery { limit: Some(0), ..Default::default() }).is_err());
        assert!(ProductQuery::parse(&RawProductQuery { offset: Some(-1), ..Default::default() }).is_err());
        let inverted = RawProductQuery { min_price_cents: Some(10), max_price_cents: Some(5), ..Default::default() };
        assert!(ProductQuery::parse(&inverted).is_err());
    }

    #[test]
    fn search_text_becomes_quoted_prefix_terms() {
        assert_eq!(fts5_match_expression("Wireless  mouse"), Some("\"wireless\"* \"mouse\"*".into()));
        assert_eq!(
            fts5_match_expression("\"a\" OR NEAR(b c) -d* col:e"),
            Some("\"a\"* \"or\"* \"near\"* \"b\"* \"c\"* \"d\"* \"col\"* \"e\"*".into())
        );
        assert_eq!(fts5_match_expression(" *:()\" "), None);
        assert_eq!(fts5_match_expression("café"), Some("\"café\"*".into()));
    }

    #[test]
    fn tsqueries_quote_every_word_as_a_required_prefix() {
        assert_eq!(tsquery_match(&search_terms("Wireless  mouse")), Some("'wireless':* & 'mouse':*".into()));
        assert_eq!(tsquery_match(&search_terms("a' | !b & (c")), Some("'a':* & 'b':* & 'c':*".into()));
        assert_eq!(tsquery_match(&search_terms(" &|!' ")), None);
    }
}
