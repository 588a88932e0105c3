//! Sign-in settings of `wearhouse-api serve`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// When the session cookie is marked `Secure` (sent over HTTPS only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CookieSecure {
    /// Always, except for a request to localhost over plain HTTP (the local stack).
    Auto,
    Always,
    Never,
}

/// Sign-in, sessions and the metrics scrape token.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// Minutes without a request after which a session ends.
    #[arg(long, env = "WEARHOUSE_SESSION_IDLE_MINUTES", default_value_t = 15)]
    pub session_idle_minutes: u32,

    /// Hours after sign-in at which a session ends however active it is.
    #[arg(long, env = "WEARHOUSE_SESSION_LIFETIME_HOURS", default_value_t = 12)]
    pub session_lifetime_hours: u32,

    /// When the session cookie is `Secure`.
    #[arg(long, env = "WEARHOUSE_COOKIE_SECURE", value_enum, default_value_t = CookieSecure::Auto)]
    pub cookie_secure: CookieSecure,

    /// Sign-in attempts one account may make in a burst before it is slowed to one a minute.
    #[arg(long, env = "WEARHOUSE_LOGIN_ACCOUNT_BURST", default_value_t = 5)]
    pub login_account_burst: u32,

    /// Sign-in attempts one client address may make in a burst before it is slowed to one
    /// every 6 seconds.
    #[arg(long, env = "WEARHOUSE_LOGIN_CLIENT_BURST", default_value_t = 20)]
    pub login_client_burst: u32,

    /// Data reads (series, CSV, imputation results, participant archives) one user may make
    /// in a burst before being paced at `--read-per-minute`; beyond it the API answers 429
    /// with `Retry-After`.
    #[arg(long, env = "WEARHOUSE_READ_BURST", default_value_t = 300,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub read_burst: u32,

    /// Data reads a minute one user may make once the burst is spent.
    #[arg(long, env = "WEARHOUSE_READ_PER_MINUTE", default_value_t = 300,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub read_per_minute: u32,

    /// A file holding the bearer token Prometheus scrapes `/metrics` with; without one only
    /// an admin may read the metrics.
    #[arg(long, env = "WEARHOUSE_METRICS_TOKEN_FILE")]
    pub metrics_token_file: Option<PathBuf>,
}
