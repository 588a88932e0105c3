//! `wearhouse-api migrate`.

use anyhow::Context as _;
use wearhouse_core::config::{DatabaseArgs, MigrateArgs};
use wearhouse_core::store::{self, MigrateSettings};

/// Applies pending migrations and reports the backend on stdout and in the log.
pub async fn run(database: &DatabaseArgs, args: &MigrateArgs) -> anyhow::Result<()> {
    let pool = database
        .connect()
        .await
        .context("cannot connect to the database; check DATABASE_URL or --database-url")?;
    let settings = MigrateSettings::from(args);
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
