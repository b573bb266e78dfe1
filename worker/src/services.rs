//! What jobs call besides the database: the payment gateway. Built once per
//! worker from its configuration and shared by every job it runs.

use std::sync::Arc;

use kassa_common::payments::{PaymentGateway, SandboxConfig, SandboxGateway};
use sqlx::SqlitePool;

/// Shared services, cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// Where charges and refunds go.
    pub gateway: Arc<dyn PaymentGateway>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").field("gateway", &self.gateway.provider()).finish()
    }
}

impl Services {
    /// The services a worker on `pool` uses, as configured.
    pub fn new(pool: &SqlitePool, payments: &SandboxConfig) -> Services {
        Services { gateway: Arc::new(SandboxGateway::new(pool.clone(), payments.clone())) }
    }
}
