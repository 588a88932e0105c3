//! `wearhouse-api migrate`.

use anyhow::Context as _;
use clap::Args;
use wearhouse_core::config::DatabaseArgs;
use wearhouse_core::store::{self, MigrateSettings};

/// Settings used when the schema is first created (ignored by later runs).
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// Build the plain-PostgreSQL schema even where TimescaleDB is available.
    #[arg(long, env = "WEARHOUSE_NO_TIMESCALEDB")]
    pub no_timescaledb: bool,

    /// TimescaleDB chunk interval of raw_data.
    #[arg(long, env = "WEARHOUSE_CHUNK_INTERVAL", default_value = "1 day")]
    pub chunk_interval: String,

    /// TimescaleDB compresses raw_data chunks older than this, and the 1-minute aggregate's
    /// chunks older than this or 3 days (its refresh window), whichever is longer.
    #[arg(long, env = "WEARHOUSE_COMPRESS_AFTER", default_value = "3 days")]
    pub compress_after: String,
}

/// Applies pending migrations and reports the backend on stdout and in the log.
pub async fn run(database: &DatabaseArgs, args: &MigrateArgs) -> anyhow::Result<()> {
    let pool = database
        .connect()
        .await
        .context("cannot connect to the database; check DATABASE_URL or --database-url")?;
    let settings = MigrateSettings {
        timescaledb: !args.no_timescaledb,
        chunk_interval: args.chunk_interval.clone(),
        compress_after: args.compress_after.clone(),
    };
    let report = store::migrate(&pool, &settings)
        .await
        .context("migration failed")?;
    tracing::info!(backend = %report.backend, applied = report.applied.len(), "migrated");
    if report.applied.is_empty() {
        println!("schema is current; backend: {}", report.backend);
    } else {
        println!(
            "applied {} migration(s); backend: {}",
            report.applied.len(),
            report.backend
        );
    }
    Ok(())
}
