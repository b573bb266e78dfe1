//! What jobs call besides the database: the payment gateway and the mailer.
//! Built once per worker from its configuration and shared by every job it runs.

use std::sync::Arc;

use kassa_common::db::Db;

use crate::config::WorkerConfig;
use crate::mail::Mailer;
use crate::payments::{PaymentGateway, SandboxGateway};

/// Shared services, cheap to clone.
#[derive(Clone)]
pub struct Services {
    /// Where charges and refunds go.
    pub gateway: Arc<dyn PaymentGateway>,
    /// Where e-mails go.
    pub mailer: Mailer,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").field("gateway", &self.gateway.provider()).field("mailer", &self.mailer).finish()
    }
}

impl Services {
    /// The services a worker on `db` uses, as configured.
    pub fn new(db: &Db, config: &WorkerConfig) -> Services {
        Services {
            gateway: Arc::new(SandboxGateway::new(db.clone(), config.payments.clone())),
            mailer: config.mailer.clone(),
        }
    }
}
