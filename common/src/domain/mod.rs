//! Domain types that cannot hold an invalid value: each is built by a
//! `parse` that says what is wrong, so handlers validate once at the edge.
//!
//! # Layout
//! - [`validation`]: collecting field-level errors.
//! - [`money`]: currencies and integer minor units.
//! - [`account`]: usernames, e-mail addresses, passwords and roles.
//! - [`product`]: new products, product changes and catalogue queries.
//! - [`order`]: order statuses and their transition table, quantities, payment methods.

pub mod account;
pub mod money;
pub mod order;
pub mod product;
pub mod validation;
