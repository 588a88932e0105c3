//! Database access: every table's SQL lives under this module. Migrations and backend
//! detection here; the sample writer, the series reader, participants, ingest watermarks and
//! runs, OAuth grants, provider moves, adherence, the imputation job queue and its output, and
//! the contact outbox in their own modules. Functions take an executor or a connection, so the
//! caller owns the transaction.

pub mod adherence;
pub mod audit;
pub mod collection;
pub mod consent_links;
pub mod contact;
pub mod credentials;
pub mod grants;
pub mod idempotency;
pub mod imputed;
pub mod ingest_state;
pub mod jobs;
pub mod lifecycle;
pub mod locks;
pub mod maintenance;
pub mod moves;
pub mod observations;
pub mod participants;
pub mod pending_refresh;
pub mod refresh;
pub mod runs;
pub mod series;
pub mod studies;
pub mod users;
pub mod writer;

use std::fmt;

use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use crate::error::{Error, Result};

pub use sqlx::PgPool as Pool;

/// The migrations in `migrations/`, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Which storage features the database offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// TimescaleDB, community license: hypertable, compression, continuous aggregates.
    Timescaledb,
    /// TimescaleDB's Apache-only build: hypertable; rollups are tables.
    TimescaledbApache,
    /// Plain PostgreSQL: ordinary tables throughout.
    Postgres,
}

impl BackendKind {
    fn parse(s: &str) -> Self {
        match s {
            "timescaledb" => BackendKind::Timescaledb,
            "timescaledb-apache" => BackendKind::TimescaledbApache,
            _ => BackendKind::Postgres,
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Timescaledb => "timescaledb",
            BackendKind::TimescaledbApache => "timescaledb-apache",
            BackendKind::Postgres => "postgres",
        })
    }
}

/// The backend a migrated database is on, and the form its rollups took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backend {
    pub kind: BackendKind,
    /// `server_version` of PostgreSQL.
    pub postgres_version: String,
    /// The TimescaleDB extension version, when installed.
    pub timescaledb_version: Option<String>,
    /// True when `data_1m`/`data_1h`/`data_1d` are tables the writer must keep current
    /// (false: continuous aggregates maintained by TimescaleDB).
    pub rollups_are_tables: bool,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (PostgreSQL {}", self.kind, self.postgres_version)?;
        if let Some(v) = &self.timescaledb_version {
            write!(f, ", TimescaleDB {v}")?;
        }
        let rollups = if self.rollups_are_tables {
            "rollup tables kept by the writer"
        } else {
            "continuous aggregates"
        };
        write!(f, "; {rollups})")
    }
}

/// Refreshes the planner's statistics of the relations a load writes and the adherence
/// refresh reads: raw samples, 1-minute rollup (its materialisation on TimescaleDB) and
/// participants. Autovacuum gets there too, but only after a while; a query planned right
/// after a load of millions of rows on statistics that still say "empty" can take minutes.
pub async fn analyze_after_load(conn: &mut PgConnection) -> Result<()> {
    analyze_samples(conn).await?;
    analyze_rollups(conn).await
}

/// The first half of [`analyze_after_load`]: raw samples and participants. On TimescaleDB a
/// large load runs it before the continuous-aggregate refresh, whose plans (and whether it
/// can compress what it materialises) follow the estimated row counts.
pub async fn analyze_samples(conn: &mut PgConnection) -> Result<()> {
    // ANALYZE is for the owner; the function runs it as the owner, for the ingest's role.
    sqlx::query("select analyze_samples()")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The second half of [`analyze_after_load`]: the 1-minute rollup, once it holds the load
/// (the table the writer keeps, or the continuous aggregate's materialisation).
pub async fn analyze_rollups(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("select analyze_minute_rollup()")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Detects the backend of a migrated database.
pub async fn detect_backend(conn: &mut PgConnection) -> Result<Backend> {
    let row = sqlx::query!(
        r#"select wearhouse_backend() as "kind!",
                  current_setting('server_version') as "postgres_version!",
                  (select extversion from pg_extension where extname = 'timescaledb')
                    as timescaledb_version,
                  (select relkind::text from pg_class where oid = to_regclass('data_1m'))
                    as rollup_relkind"#
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Backend {
        kind: BackendKind::parse(&row.kind),
        postgres_version: row.postgres_version,
        timescaledb_version: row.timescaledb_version,
        rollups_are_tables: row.rollup_relkind.as_deref() == Some("r"),
    })
}

/// Settings that shape the schema when it is first created.
#[derive(Debug, Clone)]
pub struct MigrateSettings {
    /// Use TimescaleDB when available (`false` forces the plain-PostgreSQL schema).
    pub timescaledb: bool,
    /// Hypertable chunk interval, e.g. `1 day`.
    pub chunk_interval: String,
    /// Compress chunks older than this, e.g. `3 days`.
    pub compress_after: String,
}

/// The defaults of the `migrate` command line.
impl Default for MigrateSettings {
    fn default() -> Self {
        Self::from(&crate::config::defaults::<crate::config::MigrateArgs>())
    }
}

impl From<&crate::config::MigrateArgs> for MigrateSettings {
    fn from(args: &crate::config::MigrateArgs) -> Self {
        MigrateSettings {
            timescaledb: !args.no_timescaledb,
            chunk_interval: args.chunk_interval.clone(),
            compress_after: args.compress_after.clone(),
        }
    }
}

/// What [`migrate`] did.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    pub backend: Backend,
    /// Versions applied by this call (empty when the schema was already current).
    pub applied: Vec<i64>,
}

/// Applies pending migrations and reports the backend. Running it again applies nothing.
pub async fn migrate(pool: &PgPool, settings: &MigrateSettings) -> Result<MigrateReport> {
    let mut conn = pool.acquire().await?;
    for (name, value) in [
        (
            "wearhouse.timescaledb",
            if settings.timescaledb { "auto" } else { "off" },
        ),
        ("wearhouse.chunk_interval", settings.chunk_interval.as_str()),
        ("wearhouse.compress_after", settings.compress_after.as_str()),
    ] {
        sqlx::query_scalar!("select set_config($1, $2, false)", name, value)
            .fetch_one(&mut *conn)
            .await?;
    }
    let before = applied_versions(&mut conn).await?;
    MIGRATOR.run(&mut *conn).await.map_err(Error::Migrate)?;
    let after = applied_versions(&mut conn).await?;
    let backend = detect_backend(&mut conn).await?;
    // The settings were for this session only; a pooled connection must not keep them.
    // Utility statements (`analyze`, `reset`) cannot be prepared, so they are not checked.
    sqlx::raw_sql("reset all").execute(&mut *conn).await?;
    Ok(MigrateReport {
        backend,
        applied: after.into_iter().filter(|v| !before.contains(v)).collect(),
    })
}

async fn applied_versions(conn: &mut PgConnection) -> Result<Vec<i64>> {
    let exists =
        sqlx::query_scalar!(r#"select to_regclass('_sqlx_migrations') is not null as "exists!""#)
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        return Ok(Vec::new());
    }
    // Not compile-checked: the table is sqlx's own, absent until the first migration.
    Ok(
        sqlx::query_scalar("select version from _sqlx_migrations where success order by version")
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// Whether every embedded migration has been applied, for readiness checks.
pub async fn is_migrated(pool: &PgPool) -> Result<bool> {
    let mut conn = pool.acquire().await?;
    let applied = applied_versions(&mut conn).await?;
    Ok(MIGRATOR.iter().all(|m| applied.contains(&m.version)))
}
