//! The e-mails' subjects and bodies, rendered with minijinja from templates
//! compiled into the binary. HTML bodies are auto-escaped, so a product or
//! user name can never inject markup; subjects hold only the order number and
//! fixed words, so no client text can reach a header.

use kassa_common::domain::money::format_money;
use kassa_common::jobs::NotifyEvent;
use kassa_common::store::orders::{OrderItem, OrderRow};
use minijinja::{Environment, context};
use serde::Serialize;

/// A rendered e-mail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailContent {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// The compiled templates.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    public_url: String,
}

#[derive(Serialize)]
struct Line {
    name: String,
    quantity: i64,
    unit_price: String,
    line_total: String,
}

impl Templates {
    /// Templates whose links start with `public_url`.
    pub fn new(public_url: String) -> Templates {
        let mut env = Environment::new();
        for (name, source) in [
            ("order.txt", include_str!("../../templates/order.txt")),
            ("order.html", include_str!("../../templates/order.html")),
        ] {
            env.add_template(name, source).expect("the built-in templates are valid minijinja");
        }
        Templates { env, public_url: public_url.trim_end_matches('/').to_owned() }
    }

    /// Renders the e-mail telling `username` about `event` of `order`
    /// (with its `items`; `refunded` when its payment was refunded).
    pub fn render(
        &self,
        order: &OrderRow,
        items: &[OrderItem],
        refunded: bool,
        username: &str,
        event: NotifyEvent,
    ) -> Result<EmailContent, minijinja::Error> {
        let currency = order.currency.as_str();
        let (subject, headline) = match event {
            NotifyEvent::Received => ("we received your order", "Thank you! We received your order."),
            NotifyEvent::Confirmed => ("confirmed", "Your order is confirmed: payment received, items reserved."),
            NotifyEvent::Shipped => ("shipped", "Your order is on its way."),
            NotifyEvent::Delivered => ("delivered", "Your order was delivered. Enjoy!"),
            NotifyEvent::Cancelled => ("cancelled", "Your order was cancelled."),
        };
        let reason = (event == NotifyEvent::Cancelled).then(|| cancel_reason_in_words(order.cancel_reason.as_deref()));
        let lines: Vec<Line> = items
            .iter()
            .map(|item| Line {
                name: item.name.clone(),
                quantity: item.quantity,
                unit_price: format_money(item.unit_price_cents, currency),
                line_total: format_money(item.line_total_cents, currency),
            })
            .collect();
        let ctx = context! {
            username,
            order_id => order.id,
            status => order.status.as_str(),
            headline,
            reason,
            refunded,
            lines,
            total => format_money(order.total_cents, currency),
            link => format!("{}/orders/{}", self.public_url, order.id),
        };
        Ok(EmailContent {
            subject: format!("Order #{}: {subject}", order.id),
            text: self.env.get_template("order.txt")?.render(&ctx)?,
            html: self.env.get_template("order.html")?.render(&ctx)?,
        })
    }
}

/// The sentence for a cancellation's reason code; a person's own words
/// (the note) never reach the e-mail.
fn cancel_reason_in_words(reason: Option<&str>) -> String {
    use kassa_common::domain::order::CancelReason;
    reason.and_then(CancelReason::parse).map_or_else(|| "it was cancelled".to_owned(), |r| r.in_words().to_owned())
}
