//! `kassa-api`: parses the command line, then serves or runs a subcommand.

use std::process::ExitCode;

use clap::Parser;
use kassa_api::config::{Cli, Command};
use kassa_api::{startup, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => {
            telemetry::init_tracing(cli.serve.log_format);
            startup::serve(cli.serve).await
        }
        Some(Command::Serve(serve)) => {
            telemetry::init_tracing(serve.log_format);
            startup::serve(*serve).await
        }
        Some(Command::Migrate { db }) => {
            telemetry::init_tracing(cli.serve.log_format);
            startup::migrate(&db).await
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
