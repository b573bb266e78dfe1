//! The sink as an SMTP client sees it, one raw conversation at a time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::SmtpSink;

/// A client speaking SMTP line by line.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects and reads the greeting, which must be a 220.
    fn connect(sink: &SmtpSink) -> Client {
        let stream = TcpStream::connect(&sink.addr).expect("the sink accepts connections");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
        let writer = stream.try_clone().expect("clone");
        let mut client = Client { reader: BufReader::new(stream), writer };
        assert_eq!(client.reply(), 220, "greeting");
        client
    }

    /// Reads one (possibly multi-line) reply and returns its code.
    fn reply(&mut self) -> u16 {
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("a reply");
            assert!(line.len() >= 4, "a reply line, got {line:?}");
            if line.as_bytes()[3] == b' ' {
                return line[..3].parse().expect("a reply code");
            }
        }
    }

    /// Sends a command line and returns the reply's code.
    fn send(&mut self, command: &str) -> u16 {
        write!(self.writer, "{command}\r\n").expect("command sent");
        self.reply()
    }

    /// A whole transaction for one recipient; the codes of RCPT and of the end of DATA.
    fn deliver(&mut self, to: &str, body_lines: &[&str]) -> (u16, Option<u16>) {
        assert_eq!(self.send("MAIL FROM:<shop@example.com>"), 250);
        let rcpt = self.send(&format!("RCPT TO:<{to}>"));
        if rcpt != 250 {
            assert_eq!(self.send("RSET"), 250);
            return (rcpt, None);
        }
        assert_eq!(self.send("DATA"), 354);
        for line in body_lines {
            write!(self.writer, "{line}\r\n").expect("data sent");
        }
        (rcpt, Some(self.send(".")))
    }
}

const MESSAGE: &[&str] = &[
    "From: Shop <shop@example.com>",
    "To: ana@example.com",
    "Subject: Order #1",
    "Message-ID: <order-1-received@example.com>",
    "",
    "First line.",
    "..a line that starts with a dot",
    "Last line.",
];

#[test]
fn a_message_is_stored_whole_as_it_came_over_the_wire() {
    let sink = SmtpSink::start();
    let mut client = Client::connect(&sink);
    assert_eq!(client.send("EHLO client.example.com"), 250);
    assert_eq!(client.deliver("ana@example.com", MESSAGE), (250, Some(250)));
    assert_eq!(client.send("QUIT"), 221);

    let raw = sink.raw_messages();
    assert_eq!(raw.len(), 1);
    let expected = MESSAGE.join("\r\n").replace("\r\n..a line", "\r\n.a line") + "\r\n";
    assert_eq!(String::from_utf8_lossy(&raw[0]), expected, "byte for byte, dot-unstuffed");
    let mail = &sink.messages()[0];
    assert_eq!(mail.header("message-id"), Some("<order-1-received@example.com>"));
    assert!(mail.raw.contains(".a line that starts with a dot"));
}

#[test]
fn reject_recipients_get_a_permanent_550_and_busy_ones_a_transient_451() {
    let sink = SmtpSink::start();
    let mut client = Client::connect(&sink);
    assert_eq!(client.send("HELO client.example.com"), 250);
    assert_eq!(client.deliver("reject.me@example.com", MESSAGE), (550, None));
    assert_eq!(client.deliver("Busy-Box@example.com", MESSAGE), (451, None));
    assert_eq!(client.deliver("ana@example.com", MESSAGE), (250, Some(250)), "the session goes on");
    assert_eq!(client.send("QUIT"), 221);
    assert_eq!(sink.messages().len(), 1, "only the accepted message is stored");
}

#[test]
fn a_stopped_sink_refuses_connections_and_comes_back_on_the_same_port() {
    let mut sink = SmtpSink::start();
    let addr = sink.addr.clone();
    let mut client = Client::connect(&sink);
    assert_eq!(client.send("HELO client.example.com"), 250);
    assert_eq!(client.deliver("ana@example.com", MESSAGE), (250, Some(250)));

    sink.stop();
    assert!(!sink.is_running());
    let refused = TcpStream::connect(&addr).expect_err("nothing listens on a stopped sink's port");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let mut rest = Vec::new();
    let cut = client.reader.read_to_end(&mut rest);
    assert!(cut.is_err() || rest.is_empty(), "the open session was cut, got {rest:?}");

    sink.restart();
    assert_eq!(sink.addr, addr);
    let mut client = Client::connect(&sink);
    assert_eq!(client.send("HELO client.example.com"), 250);
    assert_eq!(client.deliver("bo@example.com", MESSAGE), (250, Some(250)));
    assert_eq!(sink.messages().len(), 2, "what arrived before the stop is kept");
}

#[test]
fn a_sink_started_on_a_chosen_port_listens_there() {
    let port = super::free_port();
    let sink = SmtpSink::start_on(port);
    assert_eq!(sink.addr, format!("127.0.0.1:{port}"));
    assert_eq!(sink.url(), format!("smtp://127.0.0.1:{port}"));
    let mut client = Client::connect(&sink);
    assert_eq!(client.send("NOOP"), 250);
}
