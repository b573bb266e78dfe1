//! Orders: search by number or the customer's e-mail address, one order
//! with its items, payment, history, e-mails and the timeline
//! `GET /orders/{id}` shows, and an admin cancel through the API's own
//! cancel (`routes::orders::admin_cancel`).

use std::collections::HashMap;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use kassa_common::domain::money::format_money;
use kassa_common::domain::order::OrderStatus;
use kassa_common::store::admin::console::{self as console_store, OrderSearch};
use kassa_common::store::{notifications, orders, timeline};
use kassa_common::time::format_ms;
use serde::{Deserialize, Serialize};

use super::session::{CSRF_FIELD, ConsoleAdmin};
use super::{ConsoleError, DoneQuery, page};
use crate::routes::orders::admin_cancel;
use crate::state::AppState;

/// Orders listed per search.
pub const SEARCH_LIMIT: i64 = 50;

/// The search box.
#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    /// An order number or an e-mail address; empty lists the newest orders.
    #[serde(default)]
    pub q: String,
}

#[derive(Serialize)]
struct OrderRow {
    id: i64,
    email: String,
    status: String,
    total: String,
    created_at: String,
}

/// `GET /console/orders`: orders matching the search, newest first.
#[tracing::instrument(skip_all, fields(admin_id = admin.admin.0.user_id))]
pub async fn search(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Response, ConsoleError> {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let search = OrderSearch::parse(&query.q);
    let mut conn = state.db.pool().acquire().await?;
    let hits: Vec<OrderRow> = console_store::search_orders(&mut conn, &search, SEARCH_LIMIT)
        .await?
        .into_iter()
        .map(|o| OrderRow {
            total: format_money(o.total_cents, &o.currency),
            created_at: format_ms(o.created_at),
            id: o.id,
            email: o.email,
            status: o.status,
        })
        .collect();
    page("orders.html", &admin, minijinja::context! { orders => hits, q => query.q.trim() })
}

#[derive(Serialize)]
struct TimelineRow {
    at: String,
    kind: &'static str,
    summary: String,
}

/// `GET /console/orders/{id}`: one order and its timeline.
#[tracing::instrument(skip_all, fields(admin_id = admin.admin.0.user_id, order_id = id))]
pub async fn show(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    Path(id): Path<i64>,
    query: Result<Query<DoneQuery>, QueryRejection>,
) -> Result<Response, ConsoleError> {
    let mut conn = state.db.pool().acquire().await?;
    let Some(view) = orders::get_order_view(&mut conn, id).await? else {
        return Err(ConsoleError::NotFound(format!("order {id} not found")));
    };
    let sent = notifications::for_order(&mut conn, id).await?;
    let entries: Vec<TimelineRow> = timeline::order_timeline(&mut conn, id)
        .await?
        .into_iter()
        .map(|e| TimelineRow { at: format_ms(e.at), kind: e.kind, summary: e.summary })
        .collect();
    let customer = kassa_common::store::users::get_user(&mut conn, view.order.user_id).await?;
    let cancellable = matches!(view.order.status, OrderStatus::Pending | OrderStatus::Confirmed);
    let currency = view.order.currency.clone();
    let items: Vec<_> = view
        .items
        .iter()
        .map(|item| {
            minijinja::context! {
                product_id => item.product_id,
                name => &item.name,
                quantity => item.quantity,
                unit_price => format_money(item.unit_price_cents, &currency),
                line_total => format_money(item.line_total_cents, &currency),
            }
        })
        .collect();
    let emails: Vec<_> = sent
        .iter()
        .map(|n| minijinja::context! { event => &n.event, recipient => &n.recipient, subject => &n.subject, sent_at => format_ms(n.sent_at) })
        .collect();
    let values = minijinja::context! {
        order => minijinja::context! {
            id => view.order.id,
            status => view.order.status.as_str(),
            total => format_money(view.order.total_cents, &currency),
            payment_method => &view.order.payment_method,
            cancel_reason => &view.order.cancel_reason,
            cancel_note => &view.order.cancel_note,
            created_at => format_ms(view.order.created_at),
        },
        customer => customer.map(|c| minijinja::context! { id => c.id, username => c.username, email => c.email }),
        items,
        payment => &view.payment,
        timeline => entries,
        emails,
        cancellable,
        done => query.ok().and_then(|Query(q)| q.done),
    };
    page("order.html", &admin, values)
}

/// `POST /console/orders/{id}/cancel`: an admin cancel with a reason.
#[tracing::instrument(skip_all, fields(admin_id = admin.admin.0.user_id, order_id = id))]
pub async fn cancel(
    State(state): State<AppState>,
    admin: ConsoleAdmin,
    Path(id): Path<i64>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<Response, ConsoleError> {
    let fields = form.map(|Form(fields)| fields).unwrap_or_default();
    admin.check_csrf(fields.get(CSRF_FIELD).map(String::as_str))?;
    let reason = fields.get("reason").map(String::as_str);
    match admin_cancel(&state, &admin.admin, id, reason).await {
        Ok(_) => Ok(Redirect::to(&format!("/console/orders/{id}?done=cancel-requested")).into_response()),
        Err(crate::error::ApiError::NotFound(message)) => Err(ConsoleError::NotFound(message)),
        Err(other) => Err(other.into()),
    }
}
