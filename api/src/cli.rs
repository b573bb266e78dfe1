//! The command line of `kassa-api`: the API's settings, the embedded
//! worker's (with `--with-worker`), and the operator subcommands. Every
//! setting is a flag and a `KASSA_*` variable; `kassa-api --help` lists them.

use clap::{Args, Parser, Subcommand};
use kassa_common::db::DbArgs;
use kassa_http::config::{CreateAdminArgs, ServeArgs};

/// Kassa's HTTP API: accounts, catalogue, carts, checkout and orders.
#[derive(Debug, Parser)]
#[command(name = "kassa-api", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; without a subcommand the API is served.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings for serving the API.
    #[command(flatten)]
    pub serve: Serve,
}

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve(Box<Serve>),
    /// Apply pending database migrations and exit.
    Migrate {
        /// Database settings.
        #[command(flatten)]
        db: DbArgs,
        /// Print the summary as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create an admin account; the password comes from KASSA_ADMIN_PASSWORD or standard input.
    CreateAdmin(CreateAdminArgs),
}

/// Serving: the API, and perhaps the worker beside it.
#[derive(Clone, Debug, Args)]
pub struct Serve {
    /// The API's settings.
    #[command(flatten)]
    pub api: ServeArgs,

    /// Also run the job worker in this process, so one command runs the whole
    /// system; for scale, run separate `kassa-worker` processes instead.
    #[arg(long, env = "KASSA_WITH_WORKER", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub with_worker: bool,

    /// Settings of the embedded worker (with --with-worker).
    #[command(flatten, next_help_heading = "Embedded worker (with --with-worker)")]
    pub worker: kassa_worker::WorkerOptions,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_setting_has_a_kassa_variable_in_help() {
        let help = Cli::command().render_long_help().to_string();
        for var in [
            "KASSA_BIND",
            "KASSA_DATABASE_URL",
            "KASSA_DATA_DIR",
            "KASSA_JWT_SECRET",
            "KASSA_ADMIN_SECRET",
            "KASSA_LOG_FORMAT",
            "KASSA_AUTH_RATE_PER_MIN",
            "KASSA_AUTH_BURST",
            "KASSA_METRICS_TOKEN",
            "KASSA_SQLITE_SYNCHRONOUS",
            "KASSA_HTTP_HEADER_TIMEOUT_SECS",
            "KASSA_HTTP_BODY_TIMEOUT_SECS",
            "KASSA_HTTP_IDLE_TIMEOUT_SECS",
            "KASSA_HTTP_MAX_CONNECTIONS",
            "KASSA_WITH_WORKER",
            "KASSA_WORKER_CONCURRENCY",
            "KASSA_CONSOLE",
            "KASSA_CONSOLE_SESSION_SECS",
            "KASSA_PUBLIC_URL",
        ] {
            assert!(help.contains(var), "{var} missing from --help");
        }
    }
}
