//! A real SMTP server for the tests, running inside the test process: it
//! listens on 127.0.0.1, speaks SMTP over TCP (the `mailin` crate's session
//! state machine, see [`server`]), and writes every message it accepts, whole
//! and as received, to a directory. Tests read and parse those messages as a
//! mail client would.
//!
//! Like a real mail server it can refuse: a recipient whose local part
//! starts with `reject` gets a permanent `550`, one starting with `busy` a
//! transient `451`. It can also go down ([`SmtpSink::stop`]: the port refuses
//! connections, open sessions are cut) and come back on the same port
//! ([`SmtpSink::restart`]), keeping what it received.

mod server;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use server::{Mailbox, RunningServer};

/// A running (or stopped) SMTP sink.
pub struct SmtpSink {
    /// `127.0.0.1:PORT`, the same across a stop and a restart.
    pub addr: String,
    /// Where messages land, one `.eml` file each, named in arrival order.
    pub maildir: PathBuf,
    port: u16,
    mailbox: Mailbox,
    server: Option<RunningServer>,
    _tmp: tempfile::TempDir,
}

/// A free port on 127.0.0.1 (nothing listens on it when this returns).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("bound address").port()
}

/// One received message.
#[derive(Clone, Debug)]
pub struct ReceivedMail {
    /// Header name (lower case) → value, decoded.
    pub headers: Vec<(String, String)>,
    /// The `text/plain` part, decoded.
    pub text: String,
    /// The `text/html` part, decoded.
    pub html: String,
    /// The raw message.
    pub raw: String,
}

impl ReceivedMail {
    /// A header's decoded value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl SmtpSink {
    /// Starts a sink on a port the system picks.
    pub fn start() -> SmtpSink {
        SmtpSink::start_on(0)
    }

    /// Starts a sink on `port` (0: any free port).
    pub fn start_on(port: u16) -> SmtpSink {
        let tmp = tempfile::tempdir().expect("a temporary directory for the maildir");
        let maildir = tmp.path().join("mail");
        std::fs::create_dir(&maildir).expect("maildir created");
        let mailbox = Mailbox { maildir: maildir.clone(), stored: Arc::new(AtomicU64::new(0)) };
        let listener = server::bind(port).unwrap_or_else(|e| panic!("the SMTP sink cannot listen on port {port}: {e}"));
        let server = RunningServer::serve(listener, mailbox.clone()).expect("the SMTP sink's threads start");
        let port = server.addr().port();
        SmtpSink { addr: format!("127.0.0.1:{port}"), maildir, port, mailbox, server: Some(server), _tmp: tmp }
    }

    /// `smtp://127.0.0.1:PORT`, for `KASSA_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Whether the sink is accepting connections.
    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// Takes the server down: from when this returns, connections to the
    /// port are refused and every open session has been cut. Received
    /// messages stay.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.stop();
        }
    }

    /// Brings a stopped server back on the same port, with the same maildir.
    pub fn restart(&mut self) {
        if self.server.is_some() {
            return;
        }
        let listener = server::bind(self.port)
            .unwrap_or_else(|e| panic!("the SMTP sink cannot listen on port {} again: {e}", self.port));
        self.server =
            Some(RunningServer::serve(listener, self.mailbox.clone()).expect("the SMTP sink's threads start"));
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.raw_messages().iter().map(|raw| parse(raw)).collect()
    }

    /// Every message received so far as the bytes that came over the wire
    /// (after SMTP's dot-unstuffing), in arrival order.
    pub fn raw_messages(&self) -> Vec<Vec<u8>> {
        let Ok(dir) = std::fs::read_dir(&self.maildir) else { return Vec::new() };
        let mut files: Vec<PathBuf> =
            dir.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| server::is_message(p)).collect();
        files.sort();
        files.iter().map(|path| std::fs::read(path).expect("a stored message is readable")).collect()
    }

    /// Waits until at least `count` messages arrived; panics after `timeout`.
    pub fn wait_for_messages(&self, count: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(Instant::now() < deadline, "only {} of {count} e-mails arrived", messages.len());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Parses an RFC 5322 message with its MIME parts.
pub fn parse(raw: &[u8]) -> ReceivedMail {
    let mail = mailparse::parse_mail(raw).expect("a well-formed MIME message");
    let headers = mail.headers.iter().map(|h| (h.get_key().to_lowercase(), h.get_value())).collect();
    let mut text = String::new();
    let mut html = String::new();
    let mut stack = vec![&mail];
    while let Some(part) = stack.pop() {
        match part.ctype.mimetype.as_str() {
            "text/plain" => text = part.get_body().expect("text part decodes"),
            "text/html" => html = part.get_body().expect("html part decodes"),
            _ => stack.extend(part.subparts.iter()),
        }
    }
    ReceivedMail { headers, text, html, raw: String::from_utf8_lossy(raw).into_owned() }
}

#[cfg(test)]
mod tests;
