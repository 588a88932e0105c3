//! The providers this build knows, and how each becomes a [`Source`]. Adding a provider is one
//! variant of [`Provider`], its settings flattened into [`ProviderArgs`], and one arm in
//! [`build`] (and, if it serves HTTP such as an OAuth callback, one arm in [`routes`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use clap::{Args, ValueEnum};
use sqlx::PgPool;

use super::Source;
use super::synthetic::SyntheticSource;
use crate::metrics::SourceMetrics;

/// A data provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Provider {
    /// Generated data (`wearhouse-ingest synthetic`), continued by `run` up to the present.
    Synthetic,
}

impl Provider {
    /// Every provider, each registered by `run` and the daemon.
    pub const ALL: &[Provider] = &[Provider::Synthetic];

    /// The name stored in `participants.provider` and `ingest_state.source`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Synthetic => super::synthetic::NAME,
        }
    }
}

/// Settings of every provider (base URLs, client credentials), flattened into the commands
/// that load data. Each provider adds its own flattened block here.
#[derive(Debug, Clone, Default, Args)]
pub struct ProviderArgs {}

/// What a source may use besides its settings.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// The warehouse (sources that keep tokens read and store them here).
    pub pool: PgPool,
    /// Where sources count API requests and quota waits.
    pub metrics: SourceMetrics,
}

/// The source for `provider`.
pub fn build(
    provider: Provider,
    _args: &ProviderArgs,
    _ctx: &SourceContext,
) -> anyhow::Result<Arc<dyn Source>> {
    Ok(match provider {
        Provider::Synthetic => Arc::new(SyntheticSource::live()),
    })
}

/// HTTP routes a provider serves from the daemon (e.g. its OAuth callback); merged next to
/// `/health` and `/metrics`.
/// The synthetic source serves none; a provider with an OAuth callback merges its router here.
pub fn routes(_args: &ProviderArgs, _ctx: &SourceContext) -> Router {
    Router::new()
}

/// The sources of a run, by provider name.
#[derive(Clone, Default)]
pub struct Sources {
    by_name: BTreeMap<&'static str, Arc<dyn Source>>,
}

impl Sources {
    /// Every provider of this build.
    pub fn all(args: &ProviderArgs, ctx: &SourceContext) -> anyhow::Result<Self> {
        Provider::ALL
            .iter()
            .map(|&p| build(p, args, ctx))
            .collect::<anyhow::Result<Vec<_>>>()
            .map(Self::from_sources)
    }

    /// Exactly these sources (tests, and the `synthetic` command's simulated study).
    pub fn from_sources(sources: impl IntoIterator<Item = Arc<dyn Source>>) -> Self {
        Sources {
            by_name: sources.into_iter().map(|s| (s.name(), s)).collect(),
        }
    }

    /// The source for a provider name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Source>> {
        self.by_name.get(name)
    }
}
