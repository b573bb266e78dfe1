//! Property tests (fuzzing with proptest) of the parsers that take untrusted
//! text: the search query → FTS5 expression and PostgreSQL `tsquery` (run
//! against a real SQLite FTS5 index and, with `KASSA_TEST_POSTGRES_URL`, a
//! real PostgreSQL `tsvector` index: no input may make the query fail),
//! money, quantities and account fields.

use kassa_common::db::Backend;
use kassa_common::db::scratch::ScratchDb;
use kassa_common::domain::account::{Email, Username};
use kassa_common::domain::money::{MAX_AMOUNT_CENTS, format_money, parse_price_cents};
use kassa_common::domain::order::parse_quantity;
use kassa_common::domain::product::{ProductQuery, RawProductQuery, fts5_match_expression};
use kassa_common::store::products::search_products;
use proptest::prelude::*;

/// Text heavy in FTS5 syntax: quotes, operators, column filters, stars, brackets.
fn hostile_text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("\"".to_owned()),
        Just("*".to_owned()),
        Just("NEAR(".to_owned()),
        Just(" AND ".to_owned()),
        Just(" OR ".to_owned()),
        Just(" NOT ".to_owned()),
        Just("name:".to_owned()),
        Just("^".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just("-".to_owned()),
        Just("+".to_owned()),
        Just("{name description}:".to_owned()),
        Just("&".to_owned()),
        Just("|".to_owned()),
        Just("!".to_owned()),
        Just(":*".to_owned()),
        Just("'".to_owned()),
        Just("<->".to_owned()),
        Just("\\".to_owned()),
        "[a-zA-Z0-9]{1,8}",
        "\\PC{1,4}",
    ];
    prop::collection::vec(pieces, 0..24).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn search_expressions_are_only_quoted_prefix_terms(q in prop_oneof![hostile_text(), any::<String>()]) {
        if let Some(expression) = fts5_match_expression(&q) {
            for term in expression.split(' ') {
                prop_assert!(term.starts_with('"') && term.ends_with("\"*") && term.len() >= 4, "{term:?}");
                prop_assert!(!term[1..term.len() - 2].contains('"'));
            }
        }
    }

    #[test]
    fn money_formats_any_amount(cents in any::<i64>(), code in "[A-Z]{3}") {
        let text = format_money(cents, &code);
        prop_assert!(text.starts_with(&code));
        prop_assert_eq!(parse_price_cents(cents).is_ok(), (0..=MAX_AMOUNT_CENTS).contains(&cents));
    }

    #[test]
    fn quantities_are_exactly_one_to_a_thousand(quantity in any::<i64>()) {
        prop_assert_eq!(parse_quantity(quantity).is_ok(), (1..=1000).contains(&quantity));
    }

    #[test]
    fn account_fields_never_accept_line_breaks(text in "\\PC{0,20}[\r\n\u{0}]\\PC{0,20}") {
        prop_assert!(Username::parse(&text).is_err());
        let email = format!("a{text}@example.com");
        prop_assert!(Email::parse(&email).is_err());
    }
}

/// Runs 512 hostile and arbitrary search texts against a real full-text
/// index on `backend`; every query must run.
fn no_search_text_makes_the_query_fail(backend: Backend) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    // Connections go back to the pool on drop, which needs the runtime.
    let _context = runtime.enter();
    let Some(scratch) = runtime.block_on(ScratchDb::on(backend)) else { return };
    let pool = scratch.db.pool().clone();
    runtime
        .block_on(
            sqlx::query(
                "insert into products (name, description, price_cents, currency, stock, initial_stock, category, created_at, updated_at)
                 values ('Desk lamp', 'warm NEAR light \"quoted\" & it''s:*', 100, 'USD', 1, 1, 'home', 0, 0)",
            )
            .execute(&pool),
        )
        .expect("product");
    let config = ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(512) };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&prop_oneof![hostile_text(), any::<String>()], |q| {
            let query = ProductQuery::parse(&RawProductQuery { q: Some(&q), ..Default::default() });
            if let Ok(query) = query {
                let mut conn = runtime.block_on(pool.acquire()).expect("connection");
                let result = runtime.block_on(search_products(&mut conn, &query));
                prop_assert!(result.is_ok(), "q={q:?} failed: {result:?}");
            }
            Ok(())
        })
        .expect("every query runs");
    drop(pool);
    drop(scratch);
}

#[test]
fn no_search_text_makes_the_fts5_query_fail() {
    no_search_text_makes_the_query_fail(Backend::Sqlite);
}

#[test]
fn no_search_text_makes_the_tsquery_fail() {
    no_search_text_makes_the_query_fail(Backend::Postgres);
}
