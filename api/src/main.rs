//! `kassa-api`: parses the command line, then serves (with the worker when
//! asked) or runs an operator subcommand.
//!
//! # Layout
//! - `cli`: the command line.
//! - `compose`: the API alone or with the embedded worker.

mod cli;
mod compose;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command};
use kassa_http::{startup, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => {
            telemetry::init_tracing(cli.serve.api.log_format);
            compose::serve(cli.serve).await
        }
        Some(Command::Serve(serve)) => {
            telemetry::init_tracing(serve.api.log_format);
            compose::serve(*serve).await
        }
        Some(Command::Migrate { db, json }) => {
            telemetry::init_tracing(cli.serve.api.log_format);
            startup::migrate(&db, json).await
        }
        Some(Command::CreateAdmin(args)) => {
            telemetry::init_tracing(args.log_format);
            startup::create_admin(args).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("kassa-api: {error:#}");
            ExitCode::FAILURE
        }
    }
}
