//! E-mail to customers with lettre: over SMTP when `KASSA_SMTP_URL` is set,
//! otherwise as `.eml` files in the outbox directory (so a zero-config start
//! shows what would be sent). Failures are classified for the queue: a 5xx
//! answer for a recipient is permanent, everything else (4xx, refused or
//! dropped connections, timeouts) is transient.
//!
//! # Layout
//! - [`templates`]: the plain-text and HTML bodies of each e-mail.

pub mod templates;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

pub use templates::{EmailContent, Templates};

/// How mail is sent.
#[derive(Clone, Debug)]
pub struct MailConfig {
    /// `smtp://host:port`, `smtp://user:pass@host:587?tls=required` (STARTTLS)
    /// or `smtps://user:pass@host:465`; `None` writes files to `outbox_dir`.
    pub smtp_url: Option<String>,
    /// Sender of every e-mail.
    pub from: Mailbox,
    /// Base of links in e-mails, e.g. `https://shop.example.com`.
    pub public_url: String,
    /// Where `.eml` files go without SMTP.
    pub outbox_dir: PathBuf,
    /// Longest wait for the SMTP server.
    pub smtp_timeout: Duration,
}

/// Why an e-mail was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: the server is down, busy or slow.
    #[error("transient mail failure: {0}")]
    Transient(String),
    /// The server refused the message for good (5xx) or it cannot be built.
    #[error("permanent mail failure: {0}")]
    Permanent(String),
}

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files, written one at a time: creating a file holds its
    /// directory's lock in the kernel, so concurrent writers only spin
    /// there (a tenth of the worker's CPU under load, in a profile).
    File {
        files: AsyncFileTransport<Tokio1Executor>,
        one_at_a_time: Arc<tokio::sync::Mutex<()>>,
    },
}

/// Sends e-mails, cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    /// Domain of the stable `Message-ID`s.
    message_domain: String,
    /// Rendering of the bodies.
    pub templates: Arc<Templates>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("transport", &self.transport_name()).field("from", &self.from).finish()
    }
}

/// A message ready to send.
#[derive(Clone, Debug)]
pub struct Email {
    /// Recipient.
    pub to: Mailbox,
    /// Subject and bodies.
    pub content: EmailContent,
    /// The stable id, without angle brackets, e.g. `order-12-confirmed@kassa.localhost`.
    pub message_id: String,
}

impl Mailer {
    /// A mailer as configured; an unusable SMTP URL is an error.
    pub fn new(config: &MailConfig) -> Result<Mailer, String> {
        let transport = match &config.smtp_url {
            Some(url) => {
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| format!("KASSA_SMTP_URL is not usable: {e}"))?;
                Transport::Smtp(builder.timeout(Some(config.smtp_timeout)).build())
            }
            None => {
                std::fs::create_dir_all(&config.outbox_dir)
                    .map_err(|e| format!("cannot create the mail outbox {}: {e}", config.outbox_dir.display()))?;
                Transport::File {
                    files: AsyncFileTransport::<Tokio1Executor>::new(&config.outbox_dir),
                    one_at_a_time: Arc::default(),
                }
            }
        };
        let message_domain = config.from.email.domain().to_owned();
        Ok(Mailer {
            transport,
            from: config.from.clone(),
            message_domain,
            templates: Arc::new(Templates::new(config.public_url.clone())),
        })
    }

    /// `smtp` or `file`.
    pub fn transport_name(&self) -> &'static str {
        match self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::File { .. } => "file",
        }
    }

    /// The stable `Message-ID` (without brackets) of an order's e-mail about `event`.
    pub fn message_id(&self, order_id: i64, event: &str) -> String {
        format!("order-{order_id}-{event}@{}", self.message_domain)
    }

    /// Sends one e-mail (plain text and HTML alternatives).
    pub async fn send(&self, email: Email) -> Result<(), SendError> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(email.to)
            .subject(email.content.subject)
            .message_id(Some(format!("<{}>", email.message_id)))
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(email.content.text))
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(email.content.html)),
            )
            .map_err(|e| SendError::Permanent(format!("the message cannot be built: {e}")))?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(|e| {
                if e.is_permanent() { SendError::Permanent(e.to_string()) } else { SendError::Transient(e.to_string()) }
            }),
            Transport::File { files, one_at_a_time } => {
                let _turn = one_at_a_time.lock().await;
                files
                    .send(message)
                    .await
                    .map(drop)
                    .map_err(|e| SendError::Transient(format!("cannot write to the outbox: {e}")))
            }
        }
    }
}
