//! The API's settings: every one a flag and a `KASSA_*` variable with a
//! safe default. The `kassa-api` binary composes them into its command line
//! (with the embedded worker's) and `kassa-api --help` lists them.

use std::net::SocketAddr;

use clap::{Args, ValueEnum};
use kassa_common::db::DbArgs;
use kassa_common::domain::money::Currency;

/// Arguments of `kassa-api create-admin`.
#[derive(Debug, Args)]
pub struct CreateAdminArgs {
    /// Username of the new admin.
    #[arg(long)]
    pub username: String,
    /// E-mail address of the new admin.
    #[arg(long)]
    pub email: String,
    /// Password; prefer the environment or standard input over the command line.
    #[arg(long, env = "KASSA_ADMIN_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Database settings.
    #[command(flatten)]
    pub db: DbArgs,
    /// Log format.
    #[arg(long, env = "KASSA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings for serving the API.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (logged as `listening on ADDR`).
    #[arg(long, env = "KASSA_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,

    /// Database settings.
    #[command(flatten)]
    pub db: DbArgs,

    /// HS256 signing key for tokens; without it a random key is generated once
    /// and kept in the data directory (mode 0600).
    #[arg(long, env = "KASSA_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Lifetime of issued tokens, in seconds.
    #[arg(long, env = "KASSA_JWT_TTL_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(60..=2_592_000))]
    pub jwt_ttl_secs: u64,

    /// Secret needed by POST /auth/register-admin; without it one is generated
    /// at start and printed once in the log.
    #[arg(long, env = "KASSA_ADMIN_SECRET", hide_env_values = true)]
    pub admin_secret: Option<String>,

    /// Log format: `text` or `json`.
    #[arg(long, env = "KASSA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Requests per minute per client IP on /auth/*.
    #[arg(long, env = "KASSA_AUTH_RATE_PER_MIN", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub auth_rate_per_min: u32,

    /// Burst of requests per client IP on /auth/* before the rate applies.
    #[arg(long, env = "KASSA_AUTH_BURST", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub auth_burst: u32,

    /// When set, GET /metrics requires `Authorization: Bearer <token>`.
    #[arg(long, env = "KASSA_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Currency of products created without one.
    #[arg(long, env = "KASSA_CURRENCY", default_value = "USD", value_parser = Currency::parse)]
    pub currency: Currency,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "KASSA_MAX_BODY_BYTES", default_value_t = 65_536,
          value_parser = clap::value_parser!(u64).range(1024..=16_777_216))]
    pub max_body_bytes: u64,

    /// Password hashes computed at once (each takes 19 MiB and a core for tens
    /// of ms; one keeps the API's peak memory under 50 MB).
    #[arg(long, env = "KASSA_MAX_CONCURRENT_HASHES", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_concurrent_hashes: u32,

    /// How long Idempotency-Key records are kept, in seconds.
    #[arg(long, env = "KASSA_IDEMPOTENCY_TTL_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(60..=2_592_000))]
    pub idempotency_ttl_secs: u64,

    /// The admin dashboard lists products with at most this many units as low on stock.
    #[arg(long, env = "KASSA_LOW_STOCK_THRESHOLD", default_value_t = 5,
          value_parser = clap::value_parser!(i64).range(0..=1_000_000_000))]
    pub low_stock_threshold: i64,

    /// Checkouts and orders per minute per user (POST /orders/ and checkout).
    #[arg(long, env = "KASSA_CHECKOUT_RATE_PER_MIN", default_value_t = 120,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub checkout_rate_per_min: u32,

    /// Burst of checkouts per user before the rate applies.
    #[arg(long, env = "KASSA_CHECKOUT_BURST", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub checkout_burst: u32,

    /// Origins allowed by CORS (comma-separated); none by default.
    #[arg(long, env = "KASSA_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Limits on client connections.
    #[command(flatten, next_help_heading = "HTTP connections")]
    pub http: HttpArgs,

    /// The operator console under /console/.
    #[command(flatten, next_help_heading = "Operator console")]
    pub console: ConsoleArgs,
}

/// On or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// The operator console: HTML pages under `/console/` for admins.
#[derive(Clone, Debug, Args)]
pub struct ConsoleArgs {
    /// Serve the operator console under /console/ (`on` or `off`).
    #[arg(long = "console", env = "KASSA_CONSOLE", value_enum, default_value = "on")]
    pub console: Switch,

    /// How long a console sign-in lasts, in seconds.
    #[arg(long, env = "KASSA_CONSOLE_SESSION_SECS", default_value_t = 28_800,
          value_parser = clap::value_parser!(u64).range(1..=2_592_000))]
    pub console_session_secs: u64,

    /// The address users reach Kassa at (also the base of e-mail links); with
    /// `https://` the console's session cookie is `Secure`.
    #[arg(long = "console-public-url", env = "KASSA_PUBLIC_URL", default_value = "http://127.0.0.1:8000")]
    pub console_public_url: String,
}

impl ConsoleArgs {
    /// Whether the console is served.
    pub fn enabled(&self) -> bool {
        self.console == Switch::On
    }

    /// Whether browsers reach Kassa over TLS, so cookies can be `Secure`.
    pub fn https(&self) -> bool {
        self.console_public_url.trim().to_ascii_lowercase().starts_with("https://")
    }
}

/// Limits on client connections, so that slow or idle clients cannot hold
/// the server's sockets: every phase of a connection has a deadline, and
/// the number of connections a cap.
#[derive(Clone, Debug, Args)]
pub struct HttpArgs {
    /// Longest wait for a request's head (request line and headers), in
    /// seconds: from a new connection's accept, or from the first byte of a
    /// later request on a kept-alive connection; slower clients are
    /// disconnected.
    #[arg(long, env = "KASSA_HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub http_header_timeout_secs: u64,

    /// Longest wait for a request's whole body, in seconds from the end of
    /// its head; a slower body is answered 408 and its connection closed.
    #[arg(long, env = "KASSA_HTTP_BODY_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub http_body_timeout_secs: u64,

    /// How long a kept-alive connection may wait for its next request, in seconds.
    #[arg(long, env = "KASSA_HTTP_IDLE_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub http_idle_timeout_secs: u64,

    /// Most client connections open at once, lowered if need be to fit the
    /// open-file limit (raised to its hard limit at start). At the cap a new
    /// connection displaces the oldest one that has no request being
    /// handled; when every connection is handling a request, new ones wait
    /// in the listen backlog.
    #[arg(long, env = "KASSA_HTTP_MAX_CONNECTIONS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub http_max_connections: u64,
}
