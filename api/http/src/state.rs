//! What every handler can reach: the database, token keys, the password hasher
//! and the settings that shape behaviour.

use std::sync::Arc;

use governor::DefaultKeyedRateLimiter;
use kassa_common::db::Db;
use kassa_common::domain::money::Currency;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::passwords::Passwords;
use crate::auth::sessions::Sessions;
use crate::auth::tokens::TokenKeys;
use crate::console::session::ConsoleKeys;
use crate::idempotency::InFlight;

/// Shared application state, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The database: reads from its pool, writes as units of work.
    pub db: Db,
    /// Token signing and verification.
    pub tokens: Arc<TokenKeys>,
    /// Which tokens accounts still accept, and their current roles.
    pub sessions: Sessions,
    /// Password hashing.
    pub passwords: Passwords,
    /// Behaviour settings.
    pub settings: Arc<Settings>,
    /// Renders this process's metrics.
    pub metrics: PrometheusHandle,
    /// Idempotency keys being processed now.
    pub in_flight: InFlight,
    /// Checkouts per user.
    pub checkout_limiter: Arc<DefaultKeyedRateLimiter<i64>>,
    /// Operator console sessions.
    pub console: Arc<ConsoleKeys>,
}

/// Settings handlers consult.
#[derive(Debug)]
pub struct Settings {
    /// Secret for POST /auth/register-admin.
    pub admin_secret: String,
    /// Currency of products created without one.
    pub default_currency: Currency,
    /// Bearer token required by GET /metrics, if any.
    pub metrics_token: Option<String>,
    /// How long idempotency records are kept, in milliseconds.
    pub idempotency_ttl_ms: i64,
    /// The dashboard's low-stock threshold, in units.
    pub low_stock_threshold: i64,
}
