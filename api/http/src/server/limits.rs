//! The connection limits in force: the settings, with the connection cap
//! fitted under the process's open-file limit, which is raised first.

use std::time::Duration;

use crate::config::HttpArgs;

/// How long a client may take, and how many connections may be open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Longest wait for a request's head: from a new connection's accept, or
    /// from the first byte of a later request on a kept-alive connection.
    pub header_timeout: Duration,
    /// Longest wait for a request's whole body, from the end of its head.
    pub body_timeout: Duration,
    /// Longest wait for the next request on a kept-alive connection.
    pub idle_timeout: Duration,
    /// Most client connections open at once.
    pub max_connections: usize,
}

/// File descriptors kept free for everything but client connections: the
/// database pool (each SQLite connection holds the database, its WAL and its
/// shared-memory file), the listener, standard streams, mail outbox files and
/// an embedded worker's SMTP connections, and the one socket accepted beyond
/// the cap while the oldest idle connection makes way for it. A quarter of a
/// small limit, 256 of a large one.
pub fn reserved_files(open_files_limit: u64) -> u64 {
    (open_files_limit / 4).min(256)
}

impl HttpLimits {
    /// The limits from the settings, with `max_connections` lowered to fit
    /// in `open_files_limit` less the [`reserved_files`].
    pub fn new(args: &HttpArgs, open_files_limit: u64) -> Self {
        let fits = open_files_limit.saturating_sub(reserved_files(open_files_limit)).max(1);
        let max_connections = usize::try_from(args.http_max_connections.min(fits)).unwrap_or(usize::MAX);
        Self {
            header_timeout: Duration::from_secs(args.http_header_timeout_secs),
            body_timeout: Duration::from_secs(args.http_body_timeout_secs),
            idle_timeout: Duration::from_secs(args.http_idle_timeout_secs),
            max_connections,
        }
    }
}

/// Raises the soft limit on open files to the hard limit, so that the
/// connection cap rather than the kernel decides when connections are
/// refused, and returns the soft limit now in force.
pub fn raise_open_files_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024));
            tracing::warn!(%error, open_files_limit = soft, "could not raise the open-file limit");
            soft
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(max_connections: u64) -> HttpArgs {
        HttpArgs {
            http_header_timeout_secs: 10,
            http_body_timeout_secs: 30,
            http_idle_timeout_secs: 60,
            http_max_connections: max_connections,
        }
    }

    #[test]
    fn the_cap_fits_under_the_open_file_limit() {
        assert_eq!(HttpLimits::new(&args(10_000), 1_048_576).max_connections, 10_000);
        assert_eq!(HttpLimits::new(&args(10_000), 1024).max_connections, 768);
        assert_eq!(HttpLimits::new(&args(10_000), 20_000).max_connections, 10_000);
        assert_eq!(HttpLimits::new(&args(50), 1024).max_connections, 50);
        assert_eq!(HttpLimits::new(&args(10_000), 0).max_connections, 1);
    }

    #[test]
    fn timeouts_are_taken_as_given() {
        let limits = HttpLimits::new(&args(10), 1024);
        assert_eq!(
            (limits.header_timeout, limits.body_timeout, limits.idle_timeout),
            (Duration::from_secs(10), Duration::from_secs(30), Duration::from_secs(60))
        );
    }
}
