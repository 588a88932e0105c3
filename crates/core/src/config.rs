//! Command-line and environment configuration blocks shared by every binary. Each binary
//! flattens the blocks it needs into its own clap parser, so `--help` documents them all.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, FromArgMatches, ValueEnum};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::error::Error;

/// A clap argument block parsed from `args` alone, environment variables ignored: with no
/// arguments, the block's `default_value`s. Defaults are written once, in the `#[arg]`
/// attributes; `Default` impls, tests and benchmarks get them through here.
pub fn parse_args<T: Args + FromArgMatches>(args: &[&str]) -> Result<T, clap::Error> {
    let command = T::augment_args(clap::Command::new("defaults").no_binary_name(true))
        .mut_args(|arg| arg.env(None::<&str>));
    T::from_arg_matches(&command.try_get_matches_from(args)?)
}

/// The defaults of a clap argument block that needs no argument (see [`parse_args`]).
pub fn defaults<T: Args + FromArgMatches>() -> T {
    parse_args(&[]).unwrap_or_else(|e| panic!("an argument block without defaults: {e}"))
}

/// Database connection settings.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL, e.g. postgres://wearhouse:secret@localhost:5432/wearhouse
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: SecretString,

    /// Largest number of pooled connections.
    #[arg(long, env = "WEARHOUSE_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,

    /// Seconds to wait for a pooled connection before giving up with "unavailable".
    #[arg(long, env = "WEARHOUSE_DB_ACQUIRE_TIMEOUT_SECS", default_value_t = 5)]
    pub db_acquire_timeout_secs: u64,

    /// The database role connections work as (`SET ROLE` at connect, as a startup parameter,
    /// so it costs no round trip and holds for every pooled connection). Each binary sets it
    /// from its own setting (`WEARHOUSE_INGEST_DB_ROLE`, …) through [`DatabaseArgs::with_role`].
    #[arg(skip)]
    pub role: Option<String>,
}

impl DatabaseArgs {
    /// Settings for `url` with the default pool sizes.
    pub fn from_url(url: impl Into<String>) -> Self {
        let url = url.into();
        parse_args(&["--database-url", &url]).expect("a database URL is all DatabaseArgs needs")
    }

    /// These settings with a pool of at least `needed` connections: a pool smaller than the
    /// work that holds connections at once makes the surplus wait, then fail with "pool timed
    /// out". A larger setting is kept.
    pub fn with_min_connections(mut self, needed: u32) -> Self {
        if self.db_max_connections < needed {
            tracing::info!(
                configured = self.db_max_connections,
                connections = needed,
                "database pool enlarged to what the workers hold at once"
            );
            self.db_max_connections = needed;
        }
        self
    }

    /// These settings working as `role`; empty means the connecting user's own rights.
    pub fn with_role(mut self, role: &str) -> Self {
        let role = role.trim();
        self.role = (!role.is_empty()).then(|| role.to_owned());
        self
    }

    /// Parsed connection options, with the role when one is set.
    pub fn connect_options(&self) -> Result<PgConnectOptions, Error> {
        let options = self
            .database_url
            .expose_secret()
            .parse::<PgConnectOptions>()
            .map_err(|e| Error::invalid("database-url", e.to_string()))?;
        Ok(match &self.role {
            Some(role) => options.options([("role", role.as_str())]),
            None => options,
        })
    }

    /// A pool that connects lazily, so a service starts (and reports "not ready") while
    /// the database is down, and recovers by itself when it returns.
    pub fn lazy_pool(&self) -> Result<PgPool, Error> {
        Ok(self
            .pool_options()
            .connect_lazy_with(self.connect_options()?))
    }

    /// A pool with one connection established, for commands that need the database now.
    pub async fn connect(&self) -> Result<PgPool, Error> {
        Ok(self
            .pool_options()
            .connect_with(self.connect_options()?)
            .await?)
    }

    /// Pool settings (size, acquire timeout) for building a pool with other connect options.
    pub fn pool_options(&self) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(self.db_max_connections)
            .acquire_timeout(Duration::from_secs(self.db_acquire_timeout_secs))
    }
}

/// Where an HTTP server listens.
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// Address and port to listen on; port 0 picks a free port.
    #[arg(long, env = "WEARHOUSE_LISTEN", default_value = "0.0.0.0:8000")]
    pub listen: SocketAddr,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, for terminals.
    Pretty,
    /// One JSON object per line, for containers and log shippers.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, Args)]
pub struct TelemetryArgs {
    /// Log format.
    #[arg(long, global = true, env = "WEARHOUSE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Log filter in tracing's EnvFilter syntax, e.g. "info,wearhouse_core=debug".
    #[arg(long, global = true, env = "WEARHOUSE_LOG", default_value = "info")]
    pub log: String,
}

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
