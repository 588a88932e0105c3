//! Sources: one implementation per provider (synthetic, fitbit, google-health), all behind
//! [`Source`]. The pipeline asks a source when the participant's device last synced and for a
//! metric over a range of the participant's local days; everything after that (normalisation,
//! the sink, watermarks) is shared.

pub mod fitbit;
pub mod google_health;
pub mod registry;
pub mod sleep_stages;
pub mod synthetic;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use wearhouse_core::{Metric, ParticipantId, Sample};

/// The participant as a source sees them.
#[derive(Debug, Clone)]
pub struct SourceParticipant {
    pub id: ParticipantId,
    /// IANA zone used to turn the provider's local times into instants.
    pub timezone: Tz,
    /// The provider's own user id, when enrolled through OAuth.
    pub provider_user_id: Option<String>,
    /// Per metric, the instant from which this source took over from another provider: it
    /// delivers nothing before it (see [`crate::migration`]). Empty unless the participant moved.
    pub handed_over: BTreeMap<Metric, DateTime<Utc>>,
}

/// What a fetch returned.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub samples: Vec<Sample>,
    /// The first local day whose data the provider has not finished processing (e.g. a sleep
    /// log still `pending`): the watermark must not pass it, so the next run fetches it again.
    pub incomplete_from: Option<NaiveDate>,
}

/// Why a source could not deliver.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The participant's request budget is spent: move on, resume from the watermark later.
    #[error("request quota exhausted; retry after {retry_after:?}")]
    QuotaExhausted { retry_after: Duration },
    /// The grant is revoked or invalid: the participant must consent again.
    #[error("participant must consent again: {reason}")]
    NeedsReconsent { reason: String },
    /// The participant has no grant for this provider.
    #[error("participant is not enrolled with {provider}")]
    NotEnrolled { provider: &'static str },
    /// The participant did not grant the scope this metric needs (partial consent): the
    /// metric is skipped for them, and listed for re-consent with the scope, without failing
    /// the participant or the run.
    #[error("scope {scope:?} not granted")]
    ScopeNotGranted { scope: String },
    /// The provider or this account does not serve the metric's endpoint (404, 400, 501 for
    /// the path): not transient, so not retried; the metric is skipped for this run.
    #[error("not offered by the provider: {reason}")]
    NotOffered { reason: String },
    /// Transient failures (5xx, network) that outlasted the retries.
    #[error("provider unavailable after retries: {0}")]
    Unavailable(String),
    /// A response we could not understand or a request the provider refused.
    #[error("provider error: {0}")]
    Provider(String),
    /// The database (tokens) failed.
    #[error(transparent)]
    Store(#[from] wearhouse_core::Error),
}

/// A provider of wearable data.
#[async_trait]
pub trait Source: Send + Sync {
    /// Name stored in `ingest_state.source` and `participants.provider`.
    fn name(&self) -> &'static str;

    /// The metrics this source delivers.
    fn metrics(&self) -> Vec<Metric>;

    /// When the participant's device last synced; data after it does not exist yet, so the
    /// delta load fetches up to it and not to "now". `None`: the device never synced.
    async fn last_sync(&self, p: &SourceParticipant) -> Result<Option<DateTime<Utc>>, SourceError>;

    /// The OAuth scope the provider requires for `metric`, as it appears in a token answer's
    /// `scope`. The pipeline does not ask for a metric whose scope the stored grant lacks (it
    /// is skipped and listed for re-consent). `None`: no scope, or not known in advance.
    fn scope(&self, _metric: Metric) -> Option<&'static str> {
        None
    }

    /// The longest range of local days one [`Source::fetch`] of `metric` should cover. The
    /// pipeline asks day by day by default, which keeps memory flat however long the backfill;
    /// a provider whose endpoint returns many days per request (daily summaries) can say so to
    /// save requests.
    fn max_days_per_fetch(&self, _metric: Metric) -> u32 {
        1
    }

    /// Samples of `metric` for the participant's local days `from..=to`.
    async fn fetch(
        &self,
        p: &SourceParticipant,
        metric: Metric,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Fetched, SourceError>;
}

/// The HTTP client a provider's OAuth and data calls share: `timeout_secs` per request, and a
/// user agent naming wearhouse and its version.
pub(crate) fn http_client(timeout_secs: u64) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout_secs))
        .user_agent(concat!("wearhouse/", env!("CARGO_PKG_VERSION")))
        .build()
}
