//! Command line of `wearhouse-api`.

use clap::{Parser, Subcommand};
use wearhouse_core::config::{DatabaseArgs, TelemetryArgs};

use crate::migrate::MigrateArgs;

/// The wearhouse REST API and schema migrations.
#[derive(Debug, Parser)]
#[command(name = "wearhouse-api", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub telemetry: TelemetryArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema (TimescaleDB where available, else plain
    /// PostgreSQL) and print which backend was found. Running it again changes nothing.
    Migrate {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        args: MigrateArgs,
    },
}

/// Runs the command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    wearhouse_core::telemetry::init_tracing(&cli.telemetry);
    match cli.command {
        Command::Migrate { database, args } => crate::migrate::run(&database, &args).await,
    }
}
