//! A real SMTP server for the tests: Python's aiosmtpd (installed by
//! `.ci/run`, `pip install aiosmtpd`) running `tests/support/smtp_sink.py`,
//! which writes every message it accepts to a directory. Tests read and parse
//! those messages as a mail client would.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::ChildProcess;

/// A running SMTP sink.
pub struct SmtpSink {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Where messages land.
    pub maildir: PathBuf,
    _process: ChildProcess,
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
    /// Starts a sink on a free port.
    pub fn start() -> SmtpSink {
        SmtpSink::start_on(free_port())
    }

    /// Starts a sink on `port`.
    pub fn start_on(port: u16) -> SmtpSink {
        let tmp = tempfile::tempdir().expect("maildir");
        let maildir = tmp.path().join("mail");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/smtp_sink.py");
        let mut command = Command::new("python3");
        command.arg(script).arg(port.to_string()).arg(&maildir);
        let mut process = ChildProcess::spawn("smtp-sink", command);
        let line = process.wait_for_line("smtp sink listening on ", Duration::from_secs(30));
        SmtpSink { addr: line.trim().to_owned(), maildir, _process: process, _tmp: tmp }
    }

    /// `smtp://127.0.0.1:PORT`, for `KASSA_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let Ok(dir) = std::fs::read_dir(&self.maildir) else { return Vec::new() };
        let mut files: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
            .collect();
        files.sort();
        files.iter().map(|path| parse(&std::fs::read(path).expect("message readable"))).collect()
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
