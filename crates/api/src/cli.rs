//! Command line of `wearhouse-api`.

use clap::{Parser, Subcommand};
use wearhouse_core::config::{DatabaseArgs, ListenArgs, MigrateArgs, TelemetryArgs};
use wearhouse_core::process::{self, LogOutput, Shutdown};

use crate::admin::{self, AuditCommand, StudyCommand, TokenCommand, UserCommand};
use crate::db_login::DbCommand;
use crate::startup::{Application, ServeArgs};

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
    /// Serve the REST API (`/data`, `/participants`, `/metrics-catalog`, `/docs`,
    /// `/openapi.json`, `/health`, `/ready`, `/metrics`).
    Serve {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        listen: ListenArgs,
        /// Boxed: the serve settings are far larger than migrate's.
        #[command(flatten)]
        args: Box<ServeArgs>,
    },
    /// Studies: `study add --id S --name N`, `study list`,
    /// `study set-metrics --study S --metrics heart_rate,steps` (or `--all`).
    Study {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(subcommand)]
        command: StudyCommand,
    },
    /// Users, their role and studies: `user add|list|disable|enable|grant|revoke|set-password`.
    User {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(subcommand)]
        command: UserCommand,
    },
    /// API tokens for scripts and notebooks: `token create|list|revoke`.
    Token {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// A participant's data: `participant erase --participant P --confirm P`,
    /// `participant export --participant P --out P.zip`.
    Participant {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(subcommand)]
        command: crate::participant::ParticipantCommand,
    },
    /// One participant's data in a standard format, written to a file:
    /// `export --format fhir|omh --participant P --from D --to D --out F`.
    Export {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        args: crate::exports::cli::ExportArgs,
    },
    /// The audit trail: `audit verify`.
    Audit {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Database logins of the services: `db grafana-login --password-file F`.
    Db {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(subcommand)]
        command: DbCommand,
    },
}

/// Runs the command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    process::init_telemetry(&cli.telemetry, LogOutput::Stdout);
    match cli.command {
        Command::Migrate { database, args } => crate::migrate::run(&database, &args).await,
        Command::Serve {
            database,
            listen,
            args,
        } => {
            let app = Application::build(&database, &listen, &args).await?;
            app.run(Shutdown::on_signals().token().clone()).await
        }
        Command::Study { database, command } => admin::study(&database, command).await,
        Command::User { database, command } => admin::user(&database, command).await,
        Command::Token { database, command } => admin::token(&database, command).await,
        Command::Participant { database, command } => {
            crate::participant::run(&database, command).await
        }
        Command::Export { database, args } => crate::exports::cli::run(&database, args).await,
        Command::Db { database, command } => crate::db_login::run(&database, command).await,
        Command::Audit { database, command } => {
            if admin::audit(&database, command).await? {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
    }
}
