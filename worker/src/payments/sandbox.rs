//! The `sandbox` payment provider, following Stripe's test payment methods:
//! `pm_card_visa` (and any other token) succeeds, `pm_card_chargeDeclined`
//! (and its `pm_card_chargeDeclined…` variants) is a permanent decline,
//! `pm_card_flaky` fails transiently twice per charge and then succeeds.
//! A configurable latency and transient-failure rate serve load and chaos
//! tests; a simulated failure happens either before the provider records the
//! charge or after (the "response lost" case), so retries must rely on the
//! idempotency key. The provider keeps its own ledger table keyed by that key.

use std::time::Duration;

use futures::future::BoxFuture;
use kassa_common::db::{Db, DbConn, now_ms};
use rand::Rng;

use super::{ChargeRequest, GatewayError, PaymentGateway, Receipt, RefundRequest};

/// The sandbox's behaviour.
#[derive(Clone, Debug, Default)]
pub struct SandboxConfig {
    /// Chance in [0, 1] that a call fails transiently.
    pub failure_rate: f64,
    /// Added to every call.
    pub latency: Duration,
}

/// The sandbox provider, keeping its ledger in the Kassa database (in
/// units of work of its own, as a real provider's books are its own).
#[derive(Clone)]
pub struct SandboxGateway {
    db: Db,
    config: SandboxConfig,
}

#[derive(sqlx::FromRow)]
struct LedgerEntry {
    outcome: String,
    reference: String,
}

#[derive(Clone)]
struct Call {
    kind: &'static str,
    key: String,
    order_id: i64,
    amount_cents: i64,
    currency: String,
    payment_method: String,
}

/// What the ledger said about a call.
enum Booking {
    /// The answer (first or remembered).
    Entry(LedgerEntry),
    /// `pm_card_flaky` failing its first two calls (this is call `n`).
    Flaky(i64),
}

fn transient(error: sqlx::Error) -> GatewayError {
    GatewayError::Transient(format!("sandbox ledger unavailable: {error}"))
}

impl SandboxGateway {
    /// A sandbox keeping its ledger in `db`.
    pub fn new(db: Db, config: SandboxConfig) -> Self {
        Self { db, config }
    }

    fn roll_failure(&self) -> bool {
        self.config.failure_rate > 0.0 && rand::rng().random_bool(self.config.failure_rate.clamp(0.0, 1.0))
    }

    async fn call(&self, call: Call) -> Result<Receipt, GatewayError> {
        if !self.config.latency.is_zero() {
            tokio::time::sleep(self.config.latency).await;
        }
        // Decided before booking, so a simulated timeout "before
        // processing" leaves no trace in the ledger.
        let fail_before = self.roll_failure() && rand::rng().random_bool(0.5);
        let booking = self
            .db
            .write(move |tx| {
                let call = call.clone();
                Box::pin(async move { book(tx, &call, fail_before).await })
            })
            .await
            .map_err(transient)?;
        match booking {
            None => Err(GatewayError::Transient("sandbox: simulated timeout before processing".into())),
            Some(Booking::Flaky(calls)) => {
                Err(GatewayError::Transient(format!("pm_card_flaky: simulated timeout {calls} of 2")))
            }
            Some(Booking::Entry(entry)) => {
                if self.roll_failure() {
                    return Err(GatewayError::Transient(
                        "sandbox: simulated timeout after processing (response lost)".into(),
                    ));
                }
                entry_result(entry)
            }
        }
    }
}

/// Books a call in the ledger: the remembered answer for a known key, a
/// flaky card's failure, nothing for a simulated failure before processing,
/// or a new entry.
async fn book(tx: &mut DbConn, call: &Call, fail_before: bool) -> Result<Option<Booking>, sqlx::Error> {
    let existing: Option<LedgerEntry> =
        sqlx::query_as("select outcome, reference from sandbox_ledger where idempotency_key = $1")
            .bind(&call.key)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(entry) = existing {
        return Ok(Some(Booking::Entry(entry)));
    }
    if call.payment_method == "pm_card_flaky" {
        let calls: i64 = sqlx::query_scalar(
            "insert into sandbox_calls (idempotency_key, calls) values ($1, 1)
             on conflict (idempotency_key) do update set calls = sandbox_calls.calls + 1 returning calls",
        )
        .bind(&call.key)
        .fetch_one(&mut *tx)
        .await?;
        if calls <= 2 {
            return Ok(Some(Booking::Flaky(calls)));
        }
    }
    if fail_before {
        return Ok(None);
    }
    let declined = call.kind == "charge" && call.payment_method.starts_with("pm_card_chargeDeclined");
    let outcome = if declined { "declined" } else { "succeeded" };
    let prefix = if call.kind == "charge" { "ch" } else { "re" };
    let reference = format!("{prefix}_sandbox_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(
        "insert into sandbox_ledger
             (idempotency_key, kind, order_id, amount_cents, currency, payment_method, outcome, reference, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&call.key)
    .bind(call.kind)
    .bind(call.order_id)
    .bind(call.amount_cents)
    .bind(&call.currency)
    .bind(&call.payment_method)
    .bind(outcome)
    .bind(&reference)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    Ok(Some(Booking::Entry(LedgerEntry { outcome: outcome.into(), reference })))
}

fn entry_result(entry: LedgerEntry) -> Result<Receipt, GatewayError> {
    if entry.outcome == "declined" {
        Err(GatewayError::Declined("your card was declined (pm_card_chargeDeclined)".into()))
    } else {
        Ok(Receipt { reference: entry.reference })
    }
}

impl PaymentGateway for SandboxGateway {
    fn provider(&self) -> &'static str {
        "sandbox"
    }

    fn charge<'a>(&'a self, request: &'a ChargeRequest) -> BoxFuture<'a, Result<Receipt, GatewayError>> {
        Box::pin(self.call(Call {
            kind: "charge",
            key: request.idempotency_key.clone(),
            order_id: request.order_id,
            amount_cents: request.amount_cents,
            currency: request.currency.clone(),
            payment_method: request.payment_method.clone(),
        }))
    }

    fn refund<'a>(&'a self, request: &'a RefundRequest) -> BoxFuture<'a, Result<Receipt, GatewayError>> {
        Box::pin(self.call(Call {
            kind: "refund",
            key: request.idempotency_key.clone(),
            order_id: request.order_id,
            amount_cents: request.amount_cents,
            currency: request.currency.clone(),
            payment_method: request.charge_reference.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use kassa_common::db::scratch::ScratchDb;

    use super::*;

    async fn gateway(config: SandboxConfig) -> (ScratchDb, SandboxGateway) {
        let scratch = ScratchDb::sqlite().await;
        let gateway = SandboxGateway::new(scratch.db.clone(), config);
        (scratch, gateway)
    }

    fn charge(order_id: i64, method: &str) -> ChargeRequest {
        ChargeRequest {
            order_id,
            amount_cents: 500,
            currency: "USD".into(),
            payment_method: method.into(),
            idempotency_key: super::super::charge_key(order_id),
        }
    }

    #[tokio::test]
    async fn a_repeated_charge_returns_the_first_result() {
        let (_dir, gateway) = gateway(SandboxConfig::default()).await;
        let first = gateway.charge(&charge(1, "pm_card_visa")).await.expect("charged");
        let second = gateway.charge(&charge(1, "pm_card_visa")).await.expect("charged");
        assert_eq!(first, second);
        let rows: i64 = sqlx::query_scalar("select count(*) from sandbox_ledger")
            .fetch_one(gateway.db.pool())
            .await
            .expect("count");
        assert_eq!(rows, 1);
    }

    #[tokio::test]
    async fn declines_are_permanent_and_remembered() {
        let (_dir, gateway) = gateway(SandboxConfig::default()).await;
        for _ in 0..2 {
            let result = gateway.charge(&charge(2, "pm_card_chargeDeclined")).await;
            assert!(matches!(result, Err(GatewayError::Declined(_))), "{result:?}");
        }
    }

    #[tokio::test]
    async fn the_flaky_card_fails_twice_then_succeeds() {
        let (_dir, gateway) = gateway(SandboxConfig::default()).await;
        for _ in 0..2 {
            assert!(matches!(gateway.charge(&charge(3, "pm_card_flaky")).await, Err(GatewayError::Transient(_))));
        }
        assert!(gateway.charge(&charge(3, "pm_card_flaky")).await.is_ok());
    }

    #[tokio::test]
    async fn simulated_failures_never_charge_twice() {
        let (_dir, gateway) = gateway(SandboxConfig { failure_rate: 0.5, latency: Duration::ZERO }).await;
        let mut receipts = Vec::new();
        for _ in 0..40 {
            if let Ok(receipt) = gateway.charge(&charge(4, "pm_card_visa")).await {
                receipts.push(receipt);
            }
        }
        assert!(!receipts.is_empty());
        assert!(receipts.windows(2).all(|w| w[0] == w[1]));
        let rows: i64 = sqlx::query_scalar("select count(*) from sandbox_ledger")
            .fetch_one(gateway.db.pool())
            .await
            .expect("count");
        assert_eq!(rows, 1);
    }
}
