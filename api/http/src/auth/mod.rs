//! Authentication: bearer tokens, password hashing, the secrets they use,
//! and the extractors that make a route's requirement visible in its signature.
//!
//! # Layout
//! - [`tokens`]: issuing and verifying HS256 JWTs.
//! - [`passwords`]: Argon2id hashing off the async runtime, with a concurrency cap.
//! - [`secrets`]: the JWT key and the admin bootstrap secret.
//! - [`sessions`]: whether an account still accepts a token, and its current role.
//! - [`extractors`]: [`AuthUser`] and [`AdminUser`].

pub mod extractors;
pub mod passwords;
pub mod secrets;
pub mod sessions;
pub mod tokens;

pub use extractors::{AdminUser, AuthUser};
