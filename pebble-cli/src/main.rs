//! `pebble`: tenants, fleet migrations and health checks.
//!
//! Exit codes: 0 success and healthy, 1 findings (a target failed to
//! migrate, health findings), 2 bad usage, bad input or no connection.

mod cli;
mod commands;
mod failure;
mod progress;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use failure::USAGE;

fn main() -> ExitCode {
    // clap exits with 2 on a usage error itself.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(USAGE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(USAGE)
        }
    }
}

async fn run(cli: Cli) -> Result<u8, failure::Failure> {
    let config = failure::config(cli.database_url.as_deref())?;
    match cli.command {
        Command::Tenant(command) => commands::tenant(command, config, cli.json).await,
        Command::Migrate(args) => commands::migrate(args, config, cli.json).await,
        Command::Health(args) => commands::health(args, config, cli.json).await,
        Command::Audit(args) => commands::audit(args, config, cli.json).await,
    }
}
