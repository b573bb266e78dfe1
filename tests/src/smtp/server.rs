//! The SMTP server under [`SmtpSink`](super::SmtpSink): the `mailin` crate
//! speaks the protocol (command parsing, the session state machine, dot
//! unstuffing), this module does the I/O — a listener thread that accepts
//! connections on 127.0.0.1 and one thread per session — and can be stopped,
//! after which the port refuses connections and open sessions are cut, as a
//! crashed mail server would behave.
//!
//! Why threads and not a tokio task: the tests call the sink from
//! `#[tokio::test]` functions on a current-thread runtime, sometimes blocking
//! it (`wait_for_messages`); a server on its own threads keeps answering
//! whatever the test's runtime is doing.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use mailin::{Action, Handler, Response, SessionBuilder};

/// How long a session may stay silent before the server hangs up.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// What every session of one sink shares: where messages go and the
/// arrival counter that names them (kept across restarts, so file names
/// sort in arrival order).
#[derive(Clone, Debug)]
pub(super) struct Mailbox {
    /// Directory receiving one `.eml` file per accepted message.
    pub(super) maildir: PathBuf,
    /// Messages stored so far.
    pub(super) stored: Arc<AtomicU64>,
}

impl Mailbox {
    /// Writes `raw` whole as the next message: to a hidden file first, then
    /// renamed into place, so a reader never sees half a message.
    fn store(&self, raw: &[u8]) -> io::Result<()> {
        let number = self.stored.fetch_add(1, Ordering::SeqCst);
        let name = format!("{number:010}.eml");
        let hidden = self.maildir.join(format!(".{name}"));
        std::fs::write(&hidden, raw)?;
        std::fs::rename(&hidden, self.maildir.join(name))
    }
}

/// The decisions of one session: which recipients to refuse, and storing
/// each message as received.
struct Recorder {
    mailbox: Mailbox,
    message: Vec<u8>,
}

impl Handler for Recorder {
    fn rcpt(&mut self, to: &str) -> Response {
        let local_part = to.split('@').next().unwrap_or_default().to_ascii_lowercase();
        if local_part.starts_with("reject") {
            Response::custom(550, "5.1.1 mailbox unavailable".to_owned())
        } else if local_part.starts_with("busy") {
            Response::custom(451, "4.3.0 mailbox busy, try again later".to_owned())
        } else {
            mailin::response::OK
        }
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, _to: &[String]) -> Response {
        self.message.clear();
        mailin::response::OK
    }

    fn data(&mut self, line: &[u8]) -> io::Result<()> {
        self.message.extend_from_slice(line);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let raw = std::mem::take(&mut self.message);
        match self.mailbox.store(&raw) {
            Ok(()) => Response::custom(250, "2.0.0 Message accepted for delivery".to_owned()),
            Err(error) => Response::custom(451, format!("4.3.0 could not store the message: {error}")),
        }
    }
}

/// Open sessions (a handle on each one's socket, and its thread), so that
/// stopping can cut them.
type Sessions = Vec<(TcpStream, JoinHandle<()>)>;

/// A listening server; [`RunningServer::stop`] (or drop) takes it down.
pub(super) struct RunningServer {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    sessions: Arc<Mutex<Sessions>>,
    acceptor: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// Listens on `listener` and serves every connection into `mailbox`.
    pub(super) fn serve(listener: TcpListener, mailbox: Mailbox) -> io::Result<RunningServer> {
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let sessions = Arc::new(Mutex::new(Sessions::new()));
        let acceptor = {
            let (stopping, sessions) = (Arc::clone(&stopping), Arc::clone(&sessions));
            std::thread::Builder::new()
                .name(format!("smtp-accept-{}", addr.port()))
                .spawn(move || accept_loop(&listener, &mailbox, &stopping, &sessions))?
        };
        Ok(RunningServer { addr, stopping, sessions, acceptor: Some(acceptor) })
    }

    /// The address it listens on.
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the listening socket (new connections are refused), cuts every
    /// open session, and returns once all of its threads have ended.
    pub(super) fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else { return };
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the blocking accept(); the loop sees the flag and returns,
        // dropping the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let _ = acceptor.join();
        let sessions = std::mem::take(&mut *self.sessions.lock().unwrap_or_else(PoisonError::into_inner));
        for (stream, _) in &sessions {
            let _ = stream.shutdown(Shutdown::Both);
        }
        for (_, thread) in sessions {
            let _ = thread.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: &TcpListener, mailbox: &Mailbox, stopping: &AtomicBool, sessions: &Mutex<Sessions>) {
    for connection in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = connection else { continue };
        let Ok(handle) = stream.try_clone() else { continue };
        let recorder = Recorder { mailbox: mailbox.clone(), message: Vec::new() };
        let thread = std::thread::Builder::new().name("smtp-session".to_owned()).spawn(move || {
            // A session ends with QUIT, the client hanging up, or the server
            // stopping; none of those is worth reporting.
            let _ = serve_session(stream, recorder);
        });
        let mut open = sessions.lock().unwrap_or_else(PoisonError::into_inner);
        open.retain(|(_, thread)| !thread.is_finished());
        if let Ok(thread) = thread {
            open.push((handle, thread));
        }
    }
}

/// One SMTP conversation: greeting, then a reply to each line until QUIT.
fn serve_session(stream: TcpStream, recorder: Recorder) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let peer = stream.peer_addr()?.ip();
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut session = SessionBuilder::new("kassa-test-smtp").build(peer, recorder);
    session.greeting().write_to(&mut writer)?;
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let response = session.process(&line);
        match response.action {
            Action::NoReply => continue,
            Action::Reply => response.write_to(&mut writer)?,
            // STARTTLS is never offered, so an upgrade request ends the session too.
            Action::Close | Action::UpgradeTls => {
                response.write_to(&mut writer)?;
                writer.flush()?;
                return Ok(());
            }
        }
        writer.flush()?;
    }
}

/// Binds 127.0.0.1:`port` (0 for any free port), retrying for a while when
/// the port is still held, as it can be right after a stop.
pub(super) fn bind(port: u16) -> io::Result<TcpListener> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Err(error) if error.kind() == io::ErrorKind::AddrInUse && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            result => return result,
        }
    }
}

/// Whether `path` is a stored message (not a hidden, half-written one).
pub(super) fn is_message(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "eml")
        && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
}
