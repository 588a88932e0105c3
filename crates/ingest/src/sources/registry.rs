//! The providers this build knows, and how each becomes a [`Source`]. Adding a provider is one
//! variant of [`Provider`], its settings flattened into [`ProviderArgs`], and one arm in
//! [`build`] (and, if it serves HTTP such as an OAuth callback, one arm in [`routes`]).
//!
//! An OAuth provider without a client id is not configured and is left out of the run (its
//! participants are reported failed with the setting that is missing), so a deployment that
//! uses one provider does not need the other's credentials.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use clap::{Args, ValueEnum};
use sqlx::PgPool;
use wearhouse_core::crypto::TokenKey;

use super::Source;
use super::fitbit::{ApiObserver, FitbitArgs, FitbitSource};
use super::google_health::{GoogleHealthArgs, GoogleHealthSource};
use super::synthetic::SyntheticSource;
use crate::metrics::SourceMetrics;
use crate::oauth::links;
use crate::oauth::{TokenKeyArgs, seal_plain_grants};

/// A data provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Provider {
    /// Generated data (`wearhouse-ingest synthetic`), continued by `run` up to the present.
    Synthetic,
    /// The Fitbit Web API.
    Fitbit,
    /// The Google Health API, Fitbit's successor.
    GoogleHealth,
}

impl Provider {
    /// Every provider, each registered by `run` and the daemon.
    pub const ALL: &[Provider] = &[
        Provider::Synthetic,
        Provider::Fitbit,
        Provider::GoogleHealth,
    ];

    /// The name stored in `participants.provider` and `ingest_state.source`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Synthetic => super::synthetic::NAME,
            Provider::Fitbit => super::fitbit::PROVIDER,
            Provider::GoogleHealth => super::google_health::PROVIDER,
        }
    }

    /// The setting without which the provider is not configured, as a user sets it.
    pub fn required_setting(self) -> Option<&'static str> {
        match self {
            Provider::Synthetic => None,
            Provider::Fitbit => Some("WEARHOUSE_FITBIT_CLIENT_ID (--fitbit-client-id)"),
            Provider::GoogleHealth => Some("WEARHOUSE_GOOGLE_CLIENT_ID (--google-client-id)"),
        }
    }
}

/// Settings of every provider (base URLs, client credentials), flattened into the commands
/// that load data. Each provider adds its own flattened block here.
#[derive(Debug, Clone, Args)]
pub struct ProviderArgs {
    #[command(flatten)]
    pub fitbit: FitbitArgs,

    #[command(flatten)]
    pub google: GoogleHealthArgs,

    #[command(flatten)]
    pub token_key: TokenKeyArgs,
}

/// What a source may use besides its settings.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// The warehouse (sources that keep tokens read and store them here).
    pub pool: PgPool,
    /// Where sources count API requests and quota waits.
    pub metrics: SourceMetrics,
    /// The key grants are sealed under; the OAuth providers need it.
    pub token_key: Option<TokenKey>,
}

impl SourceContext {
    /// The context of a command that loads or enrols: loads the grant key named in `args` and
    /// seals any grant still stored in plain text (an error without a key).
    pub async fn prepare(
        pool: PgPool,
        metrics: SourceMetrics,
        args: &ProviderArgs,
    ) -> anyhow::Result<Self> {
        let ctx = SourceContext::new(pool, metrics, args)?;
        ctx.seal_plain_grants().await?;
        Ok(ctx)
    }

    /// The context with the grant key named in `args` loaded, nothing sealed yet (the daemon
    /// starts while the database may still be down).
    pub fn new(pool: PgPool, metrics: SourceMetrics, args: &ProviderArgs) -> anyhow::Result<Self> {
        Ok(SourceContext {
            pool,
            metrics,
            token_key: args.token_key.load()?,
        })
    }

    /// Seals the grants still stored in plain text; see [`seal_plain_grants`].
    pub async fn seal_plain_grants(&self) -> anyhow::Result<u64> {
        seal_plain_grants(&self.pool, self.token_key.as_ref()).await
    }

    /// The grant key, which `provider` cannot work without.
    fn key_for(&self, provider: &str) -> anyhow::Result<TokenKey> {
        self.token_key.clone().with_context(|| {
            format!(
                "WEARHOUSE_TOKEN_KEY_FILE (--token-key-file) is required with {provider}: \
                 its OAuth grants are stored encrypted under that key"
            )
        })
    }
}

/// The OAuth sources count their requests and quota waits in the ingest metrics
/// (`wearhouse_ingest_api_requests_total`, `wearhouse_ingest_quota_waits_total`).
impl ApiObserver for SourceMetrics {
    fn api_request(&self, source: &'static str, status: &str) {
        SourceMetrics::api_request(self, source, status);
    }

    fn quota_wait(&self, source: &'static str) {
        SourceMetrics::quota_wait(self, source);
    }
}

/// The Fitbit source, or `None` when no client id is configured.
pub fn fitbit(args: &ProviderArgs, ctx: &SourceContext) -> anyhow::Result<Option<FitbitSource>> {
    if args.fitbit.client_id.is_none() {
        return Ok(None);
    }
    let observer: Arc<dyn ApiObserver> = Arc::new(ctx.metrics.clone());
    Ok(Some(FitbitSource::new(
        ctx.pool.clone(),
        ctx.key_for("fitbit")?,
        &args.fitbit,
        observer,
    )?))
}

/// The Google Health source, or `None` when no client id is configured. With Fitbit also
/// configured, enrolment revokes the Fitbit grant of a participant who moves over.
pub fn google_health(
    args: &ProviderArgs,
    ctx: &SourceContext,
) -> anyhow::Result<Option<GoogleHealthSource>> {
    if args.google.client_id.is_none() {
        return Ok(None);
    }
    let observer: Arc<dyn ApiObserver> = Arc::new(ctx.metrics.clone());
    let mut source = GoogleHealthSource::new(
        ctx.pool.clone(),
        ctx.key_for("google-health")?,
        &args.google,
        observer,
    )?;
    if let Some(fitbit) = fitbit(args, ctx)? {
        source = source.with_fitbit_revocation(fitbit.api().tokens().clone());
    }
    Ok(Some(source))
}

/// The source for `provider`, or `None` when the provider is not configured.
pub fn build(
    provider: Provider,
    args: &ProviderArgs,
    ctx: &SourceContext,
) -> anyhow::Result<Option<Arc<dyn Source>>> {
    Ok(match provider {
        Provider::Synthetic => Some(Arc::new(SyntheticSource::live())),
        Provider::Fitbit => fitbit(args, ctx)?.map(|s| Arc::new(s) as Arc<dyn Source>),
        Provider::GoogleHealth => google_health(args, ctx)?.map(|s| Arc::new(s) as Arc<dyn Source>),
    })
}

/// The path of a redirect URI (`/callback` when it cannot be parsed).
pub fn callback_path(redirect_uri: &str) -> String {
    url::Url::parse(redirect_uri)
        .map(|u| u.path().to_owned())
        .unwrap_or_else(|_| "/callback".to_owned())
}

/// HTTP routes the providers serve from the daemon: each configured OAuth provider's consent
/// callback at the path of its redirect URI, so a consent link opened at any time completes
/// there, and coordinators' consent links (`/consent/{token}`). Merged next to `/health` and
/// `/metrics`.
pub fn routes(args: &ProviderArgs, ctx: &SourceContext) -> anyhow::Result<Router> {
    let mut router = Router::new();
    let fitbit = fitbit(args, ctx)?;
    let google = google_health(args, ctx)?;
    if let Some(fitbit) = &fitbit {
        router = router.merge(fitbit.callback_router(
            ctx.pool.clone(),
            &callback_path(&args.fitbit.redirect_uri),
            None,
        ));
    }
    if let Some(google) = &google {
        router =
            router.merge(google.callback_router(&callback_path(&args.google.redirect_uri), None));
    }
    Ok(router.merge(links::router(links::LinkRoutes {
        pool: ctx.pool.clone(),
        fitbit,
        google,
    })))
}

/// The sources of a run, by provider name.
#[derive(Clone, Default)]
pub struct Sources {
    by_name: BTreeMap<&'static str, Arc<dyn Source>>,
    /// Providers of this build left out for want of a setting, with the setting.
    unconfigured: BTreeMap<&'static str, &'static str>,
}

impl Sources {
    /// Every configured provider of this build.
    pub fn all(args: &ProviderArgs, ctx: &SourceContext) -> anyhow::Result<Self> {
        let mut sources = Vec::new();
        let mut unconfigured = BTreeMap::new();
        for &p in Provider::ALL {
            match build(p, args, ctx)? {
                Some(s) => sources.push(s),
                None => {
                    tracing::info!(provider = p.name(), "provider not configured; skipped");
                    if let Some(setting) = p.required_setting() {
                        unconfigured.insert(p.name(), setting);
                    }
                }
            }
        }
        Ok(Sources {
            unconfigured,
            ..Self::from_sources(sources)
        })
    }

    /// Exactly these sources (tests, and the `synthetic` command's simulated study).
    pub fn from_sources(sources: impl IntoIterator<Item = Arc<dyn Source>>) -> Self {
        Sources {
            by_name: sources.into_iter().map(|s| (s.name(), s)).collect(),
            unconfigured: BTreeMap::new(),
        }
    }

    /// The source for a provider name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Source>> {
        self.by_name.get(name)
    }

    /// Why there is no source for a provider name, in words that say what to set.
    pub fn missing(&self, name: &str) -> String {
        match self.unconfigured.get(name) {
            Some(setting) => format!(
                "provider {name:?} is not configured: set {setting} to load its participants"
            ),
            None => format!("provider {name:?} is not known to this build of wearhouse-ingest"),
        }
    }
}
