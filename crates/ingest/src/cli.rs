//! Command line of `wearhouse-ingest`. Each subcommand is one variant of [`Command`] and one
//! arm in [`run`]; a provider's own subcommands (such as enrolment) are added the same way.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use wearhouse_core::config::{DatabaseArgs, TelemetryArgs};
use wearhouse_core::process::{self, LogOutput, Shutdown};

use crate::cohort::CohortArgs;
use crate::daemon::DaemonArgs;
use crate::enroll::EnrollArgs;
use crate::import::ImportArgs;
use crate::metrics::{IngestMetrics, Outcome};
use crate::migration::reconsent::ReconsentListArgs;
use crate::oauth::key::RotateKeyArgs;
use crate::pipeline::{Pipeline, PipelineArgs};
use crate::sources::registry::{ProviderArgs, SourceContext, Sources};

/// Collects wearable data into the wearhouse database: a daily delta load per participant,
/// metric and provider, from each participant's watermark up to their device's last sync.
#[derive(Debug, Parser)]
#[command(name = "wearhouse-ingest", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub telemetry: TelemetryArgs,

    /// The database role every command works as (`SET ROLE` at connect): by default the
    /// least-privileged `wearhouse_ingest` the migrations create, which cannot read sign-in
    /// data nor the audit trail. Empty: the connecting user's own rights.
    #[arg(
        long,
        global = true,
        env = "WEARHOUSE_INGEST_DB_ROLE",
        default_value = "wearhouse_ingest"
    )]
    pub db_role: String,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enrol a reproducible synthetic cohort (SYN0001, …) and load its study period through
    /// the regular pipeline. The same seed gives the same data; running it again changes
    /// nothing.
    Synthetic(CohortArgs),

    /// Run one delta load now, over every active participant of every provider, print a
    /// summary per outcome on stderr, and exit: 0 when everything due was loaded, 1 when
    /// something failed, 3 when nothing failed but participants were deferred (request quota),
    /// held by another process, or need re-consent.
    Run(RunArgs),

    /// Run the delta load on a schedule and serve /health, /metrics and the providers'
    /// callbacks until SIGTERM or SIGINT.
    Daemon(DaemonArgs),

    /// Enrol a participant with Fitbit or Google Health: prints the consent link, serves the
    /// OAuth callback on the redirect URI's port, exchanges the code and stores the grant.
    /// Creates the participant (in `--timezone`) when missing.
    Enroll(EnrollArgs),

    /// Import a participant's Fitbit export or Google Takeout (folder or .zip; history from before
    /// enrolment) and print what was imported and every file that was not; exits with 3 when a
    /// file was refused for a limit or for not being a regular file.
    Import(ImportArgs),

    /// List the participants who must consent again (revoked or invalid grants, accounts not
    /// moved to Google Health), with provider, since when and why.
    ReconsentList(ReconsentListArgs),

    /// Re-encrypt every participant's OAuth grant under a new key, in one transaction, and
    /// print how many; then point WEARHOUSE_TOKEN_KEY_FILE at the new key and restart.
    RotateTokenKey(RotateKeyArgs),

    /// A participant's lifecycle: `participant withdraw --participant P --reason R` stops
    /// collection, keeps the data and revokes the grant at the provider;
    /// `participant set-backfill --participant P --from YYYY-MM-DD` loads history from before
    /// enrolment.
    #[command(subcommand)]
    Participant(crate::withdraw::ParticipantCommand),
}

impl Command {
    /// The database settings of the command (every command has them).
    fn database_mut(&mut self) -> &mut DatabaseArgs {
        match self {
            Command::Synthetic(a) => &mut a.database,
            Command::Run(a) => &mut a.database,
            Command::Daemon(a) => &mut a.database,
            Command::Enroll(a) => &mut a.database,
            Command::Import(a) => &mut a.database,
            Command::ReconsentList(a) => &mut a.database,
            Command::RotateTokenKey(a) => &mut a.database,
            Command::Participant(crate::withdraw::ParticipantCommand::Withdraw(a)) => {
                &mut a.database
            }
            Command::Participant(crate::withdraw::ParticipantCommand::SetBackfill(a)) => {
                &mut a.database
            }
        }
    }
}

/// Settings of `wearhouse-ingest run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub pipeline: PipelineArgs,

    #[command(flatten)]
    pub providers: ProviderArgs,
}

/// Runs the command line; the exit status is `run`'s (see [`crate::runs::RunStatus`]), 0 for
/// the other commands when they succeed.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    process::init_telemetry(&cli.telemetry, LogOutput::Stdout);
    let shutdown = Shutdown::on_signals().token().clone();
    let mut command = cli.command;
    let database = command.database_mut();
    *database = database.clone().with_role(&cli.db_role);
    match command {
        Command::Synthetic(args) => {
            let report = crate::cohort::run(&args, &shutdown).await?;
            anyhow::ensure!(
                report.outcome() == Outcome::Success,
                "{} participant(s) failed",
                report.failed.len()
            );
            // Unlike a scheduled run, the user asked for this cohort now: say so when part of
            // it was in another process's hands (or a killed one's, until the server notices).
            anyhow::ensure!(
                report.locked.is_empty() && !report.interrupted(),
                "{} participant(s) were being loaded by another process and {} not started; \
                 run the command again",
                report.locked.len(),
                report.not_started
            );
        }
        Command::Run(args) => return run_once(args, &shutdown).await,
        Command::Daemon(args) => crate::daemon::run(args, shutdown).await?,
        Command::Enroll(args) => println!("{}", crate::enroll::run(&args, &shutdown).await?),
        Command::Import(args) => {
            let (report, summary) = crate::import::run(&args).await?;
            print!("{summary}");
            // Like a run that left work for later: nothing failed, but not everything loaded.
            if !report.is_complete() {
                return Ok(ExitCode::from(3));
            }
        }
        Command::Participant(command) => print!("{}", crate::withdraw::run(command).await?),
        Command::ReconsentList(args) => {
            print!("{}", crate::migration::reconsent::run(&args).await?);
        }
        Command::RotateTokenKey(args) => println!("{}", crate::oauth::key::rotate(&args).await?),
    }
    Ok(ExitCode::SUCCESS)
}

/// One run; its summary goes to stderr, next to any error, and its status is the exit code.
async fn run_once(args: RunArgs, shutdown: &CancellationToken) -> anyhow::Result<ExitCode> {
    let database = args
        .database
        .with_min_connections(args.pipeline.connections());
    let pool = database.connect().await?;
    let metrics = IngestMetrics::unregistered();
    let ctx = SourceContext::prepare(pool.clone(), metrics.source.clone(), &args.providers).await?;
    let sources = Sources::all(&args.providers, &ctx)?;
    let report = Pipeline::new(pool.clone(), sources, metrics, args.pipeline)
        .await?
        .run(shutdown)
        .await?;
    pool.close().await;
    eprint!("{}", report.summary());
    Ok(ExitCode::from(report.status().exit_code()))
}
