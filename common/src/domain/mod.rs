//! Domain types that cannot hold an invalid value: each is built by a
//! `parse` that says what is wrong, so handlers validate once at the edge.
//!
//! # Layout
//! - [`validation`]: collecting field-level errors.
//! - [`money`]: currencies and integer minor units.
//! - [`account`]: usernames, e-mail addresses, passwords and roles.
//! - [`email_key`]: the Unicode-aware form e-mail addresses are compared in.
//! - [`product`]: new products, product changes and catalogue queries.
//! - [`text`]: rules for text shown to people (no bidirectional controls).
//! - [`order`]: order statuses and their transition table, quantities, payment methods.

pub mod account;
pub mod email_key;
pub mod money;
pub mod order;
pub mod product;
pub mod text;
pub mod validation;
