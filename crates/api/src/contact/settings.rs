//! Settings of the contact form: SMTP, recipients, retry timing and abuse limits. Every flag is
//! also an environment variable; the SMTP password is a secret, read from a file where possible.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use secrecy::SecretString;

use super::outbox;

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmtpTls {
    /// Plain text: only for a relay on the same host or network (a local mail sink).
    None,
    /// Upgrade with STARTTLS, which the server must offer (usually port 587).
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// Contact form settings, flattened into `wearhouse-api serve`.
#[derive(Debug, Clone, Args)]
pub struct ContactArgs {
    /// SMTP server that relays contact requests to the study coordinator. Without it, requests
    /// are stored and wait in the outbox until a server is configured.
    #[arg(long, env = "WEARHOUSE_SMTP_HOST")]
    pub smtp_host: Option<String>,

    /// SMTP port.
    #[arg(long, env = "WEARHOUSE_SMTP_PORT", default_value_t = 587)]
    pub smtp_port: u16,

    /// Transport security: none, starttls or tls.
    #[arg(long, env = "WEARHOUSE_SMTP_TLS", value_enum, default_value_t = SmtpTls::Starttls)]
    pub smtp_tls: SmtpTls,

    /// SMTP user name; empty: no authentication.
    #[arg(long, env = "WEARHOUSE_SMTP_USERNAME")]
    pub smtp_username: Option<String>,

    /// SMTP password (prefer --smtp-password-file).
    #[arg(long, env = "WEARHOUSE_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<SecretString>,

    /// File holding the SMTP password (a Docker secret).
    #[arg(long, env = "WEARHOUSE_SMTP_PASSWORD_FILE")]
    pub smtp_password_file: Option<PathBuf>,

    /// Sender of the e-mails, e.g. `wearhouse <noreply@example.org>`.
    #[arg(
        long,
        env = "WEARHOUSE_SMTP_FROM",
        default_value = "wearhouse <wearhouse@localhost>"
    )]
    pub smtp_from: String,

    /// The study coordinator's address(es), comma-separated.
    #[arg(long, env = "WEARHOUSE_CONTACT_TO", value_delimiter = ',')]
    pub contact_to: Vec<String>,

    /// Seconds before the first retry of a failed send; each retry doubles it, up to an hour.
    #[arg(long, env = "WEARHOUSE_CONTACT_RETRY_SECS", default_value_t = 30)]
    pub contact_retry_secs: u64,

    /// Seconds a replica reserves the request it is sending (its lease). The sender renews it
    /// every third of this while the SMTP server is slow; a replica that dies holds the one
    /// request it was sending this long, then another replica (or the restarted API) takes it.
    #[arg(long, env = "WEARHOUSE_CONTACT_LEASE_SECS", default_value_t = outbox::DEFAULT_LEASE_SECS,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub contact_lease_secs: u64,

    /// Secret that signs the form's CSRF tokens. Set it when several API replicas serve the
    /// form; otherwise a random key per process is used.
    #[arg(long, env = "WEARHOUSE_CONTACT_CSRF_SECRET", hide_env_values = true)]
    pub contact_csrf_secret: Option<SecretString>,

    /// Contact form submissions allowed per client address in a burst; they refill at one per
    /// `--contact-rate-refill-secs`.
    #[arg(long, env = "WEARHOUSE_CONTACT_RATE_BURST", default_value_t = 5)]
    pub contact_rate_burst: u32,

    /// Seconds to earn one more submission.
    #[arg(long, env = "WEARHOUSE_CONTACT_RATE_REFILL_SECS", default_value_t = 60)]
    pub contact_rate_refill_secs: u64,
}

/// The defaults of the command line (environment variables aside).
impl Default for ContactArgs {
    fn default() -> Self {
        wearhouse_core::config::defaults()
    }
}
