//! An order's timeline: every status change, every job attempt made on its
//! behalf (type, attempt, worker, duration, outcome, error), the jobs still
//! waiting, its payment and refund, and the e-mails sent — in time order, so
//! a stuck order can be debugged without reading logs.

use crate::db::DbConn;
use serde::Serialize;

use crate::domain::money::format_money;

/// One thing that happened to an order.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    /// When.
    #[serde(with = "crate::time::rfc3339_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    /// `status`, `job_attempt`, `job_waiting`, `payment`, `refund` or `notification`.
    pub kind: &'static str,
    /// The entry in one line.
    pub summary: String,
    /// The entry's data.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct StatusRow {
    at: i64,
    from_status: Option<String>,
    to_status: String,
    actor: String,
    reason: Option<String>,
    note: Option<String>,
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    job_id: i64,
    job_type: String,
    attempt: i64,
    worker_id: String,
    started_at: i64,
    duration_ms: i64,
    outcome: String,
    error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct WaitingJobRow {
    id: i64,
    job_type: String,
    status: String,
    attempts: i64,
    run_at: i64,
    created_at: i64,
    lease_owner: Option<String>,
    last_error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct PaymentRow {
    provider: String,
    status: String,
    reference: Option<String>,
    amount_cents: i64,
    currency: String,
    error: Option<String>,
    refund_reference: Option<String>,
    created_at: i64,
    updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct NotificationRow {
    event: String,
    recipient: String,
    message_id: String,
    transport: String,
    sent_at: i64,
}

/// The timeline of an order, oldest first.
pub async fn order_timeline(conn: &mut DbConn, order_id: i64) -> Result<Vec<TimelineEntry>, sqlx::Error> {
    let mut entries = Vec::new();
    let history: Vec<StatusRow> = sqlx::query_as(
        "select at, from_status, to_status, actor, reason, note from order_status_history where order_id = $1 order by id",
    )
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?;
    for row in history {
        let mut summary = match (&row.from_status, &row.reason) {
            (None, _) => format!("order placed by {}", row.actor),
            (Some(from), None) => format!("{from} → {} by {}", row.to_status, row.actor),
            (Some(from), Some(reason)) => format!("{from} → {} by {} ({reason})", row.to_status, row.actor),
        };
        if let Some(note) = &row.note {
            summary.push_str(&format!(": \u{201c}{note}\u{201d}"));
        }
        entries.push(TimelineEntry {
            at: row.at,
            kind: "status",
            summary,
            details: serde_json::json!({
                "from": row.from_status, "to": row.to_status, "actor": row.actor, "reason": row.reason, "note": row.note,
            }),
        });
    }

    let attempts: Vec<AttemptRow> = sqlx::query_as(
        "select a.job_id, j.job_type, a.attempt, a.worker_id, a.started_at, a.duration_ms, a.outcome, a.error
         from jobs j join job_attempts a on a.job_id = j.id
         where j.order_id = $1 order by a.started_at, a.id",
    )
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?;
    for row in attempts {
        let mut summary = format!(
            "{} attempt {} on {}: {} in {} ms",
            row.job_type, row.attempt, row.worker_id, row.outcome, row.duration_ms
        );
        if let Some(error) = &row.error {
            summary.push_str(&format!(" — {error}"));
        }
        entries.push(TimelineEntry {
            at: row.started_at,
            kind: "job_attempt",
            summary,
            details: serde_json::json!({
                "job_id": row.job_id, "job_type": row.job_type, "attempt": row.attempt, "worker_id": row.worker_id,
                "duration_ms": row.duration_ms, "outcome": row.outcome, "error": row.error,
            }),
        });
    }

    let waiting: Vec<WaitingJobRow> = sqlx::query_as(
        "select id, job_type, status, attempts, run_at, created_at, lease_owner, last_error
         from jobs
         where order_id = $1 and status in ('pending', 'running', 'dead') order by id",
    )
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?;
    for row in waiting {
        let summary = match row.status.as_str() {
            "pending" if row.attempts == 0 => format!("{} queued, due at its run time", row.job_type),
            "pending" => format!("{} waiting to retry after {} attempt(s)", row.job_type, row.attempts),
            "running" => format!("{} running on {}", row.job_type, row.lease_owner.as_deref().unwrap_or("a worker")),
            _ => format!("{} dead after {} attempt(s): needs an operator", row.job_type, row.attempts),
        };
        entries.push(TimelineEntry {
            at: if row.status == "pending" { row.run_at } else { row.created_at },
            kind: "job_waiting",
            summary,
            details: serde_json::json!({
                "job_id": row.id, "job_type": row.job_type, "state": row.status, "attempts": row.attempts,
                "run_at": crate::time::format_ms(row.run_at), "lease_owner": row.lease_owner, "last_error": row.last_error,
            }),
        });
    }

    let payment: Option<PaymentRow> = sqlx::query_as(
        "select provider, status, reference, amount_cents, currency, error, refund_reference, created_at, updated_at
         from payments where order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(p) = payment {
        let amount = format_money(p.amount_cents, &p.currency);
        entries.push(TimelineEntry {
            at: p.created_at,
            kind: "payment",
            summary: format!("charge of {amount} sent to {}", p.provider),
            details: serde_json::json!({"provider": p.provider, "amount_cents": p.amount_cents}),
        });
        let settled = match p.status.as_str() {
            "pending" => None,
            "captured" | "refunded" => {
                Some(("payment", format!("{amount} captured ({})", p.reference.as_deref().unwrap_or("-"))))
            }
            status => Some(("payment", format!("payment {status}: {}", p.error.as_deref().unwrap_or("-")))),
        };
        if let Some((kind, summary)) = settled {
            entries.push(TimelineEntry {
                at: p.updated_at,
                kind,
                summary,
                details: serde_json::json!({"status": p.status, "reference": p.reference, "error": p.error}),
            });
        }
        if let Some(refund) = p.refund_reference {
            entries.push(TimelineEntry {
                at: p.updated_at,
                kind: "refund",
                summary: format!("{amount} refunded ({refund})"),
                details: serde_json::json!({"reference": refund, "amount_cents": p.amount_cents}),
            });
        }
    }

    let sent: Vec<NotificationRow> = sqlx::query_as(
        "select event, recipient, message_id, transport, sent_at from notifications where order_id = $1",
    )
    .bind(order_id)
    .fetch_all(&mut *conn)
    .await?;
    for row in sent {
        entries.push(TimelineEntry {
            at: row.sent_at,
            kind: "notification",
            summary: format!("{} e-mail sent to {} via {}", row.event, row.recipient, row.transport),
            details: serde_json::json!({"event": row.event, "recipient": row.recipient, "message_id": row.message_id}),
        });
    }
    entries.sort_by_key(|entry| entry.at);
    Ok(entries)
}
