//! The synthetic source: a reproducible cohort for demonstrations, load tests and the
//! end-to-end tests. It behaves like a provider: data exists only up to the device's last
//! sync, some devices sync a day or more late, some hours and days have no data (device off
//! the wrist). The cohort seed is stored as the participant's provider user id (`seed-7`), so
//! a later `run` continues the same participants with the same data.

mod generate;
mod plan;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use wearhouse_core::Metric;

use super::{Fetched, Source, SourceError, SourceParticipant};
use generate::Day;
pub use plan::{Profile, local_day_start, stream};

/// The provider name in `participants.provider` and `ingest_state.source`.
pub const NAME: &str = "synthetic";

/// The metrics a synthetic device reports.
pub const METRICS: [Metric; 10] = [
    Metric::HeartRate,
    Metric::Steps,
    Metric::Calories,
    Metric::Distance,
    Metric::SleepStage,
    Metric::Spo2,
    Metric::HrvRmssd,
    Metric::BreathingRate,
    Metric::SkinTempDelta,
    Metric::RestingHeartRate,
];

/// The provider user id that carries a cohort seed.
pub fn device_id(seed: u64) -> String {
    format!("seed-{seed}")
}

fn seed_of(p: &SourceParticipant) -> Result<u64, SourceError> {
    p.provider_user_id
        .as_deref()
        .and_then(|id| id.strip_prefix("seed-"))
        .and_then(|s| s.parse().ok())
        .ok_or(SourceError::NotEnrolled { provider: NAME })
}

/// A synthetic provider.
#[derive(Debug, Clone)]
pub struct SyntheticSource {
    /// "Now" for the simulated devices; `None`: the real clock.
    as_of: Option<DateTime<Utc>>,
    /// The last local day with data (the end of a simulated study); `None`: no end.
    until: Option<NaiveDate>,
}

impl SyntheticSource {
    /// Devices that keep producing data up to the present, for `run` and the daemon.
    pub fn live() -> Self {
        SyntheticSource {
            as_of: None,
            until: None,
        }
    }

    /// A study of `days` days from `start`, seen from half a day after its last day: regular
    /// devices have synced everything, late syncers still lag.
    pub fn study(start: NaiveDate, days: u32) -> Self {
        let until = start + Duration::days(i64::from(days.max(1)) - 1);
        let after = until.succ_opt().expect("date in range");
        // The devices last synced at noon after the study, or now for a study that reaches
        // today: a watermark in the future would hold back the next live load.
        let noon_after = wearhouse_core::time::midnight_utc(after) + Duration::hours(12);
        SyntheticSource {
            as_of: Some(noon_after.min(Utc::now())),
            until: Some(until),
        }
    }

    /// The simulated device's last sync: on its sync grid, lagging by the profile's lag.
    fn device_last_sync(&self, seed: u64, p: &SourceParticipant) -> DateTime<Utc> {
        let profile = Profile::new(seed, p.id.as_str());
        let now = self.as_of.unwrap_or_else(Utc::now) - Duration::minutes(profile.sync_lag_min);
        let grid = profile.sync_every_min * 60;
        let secs = now.timestamp().div_euclid(grid) * grid;
        DateTime::from_timestamp(secs, 0).expect("in range")
    }
}

#[async_trait]
impl Source for SyntheticSource {
    fn name(&self) -> &'static str {
        NAME
    }

    fn metrics(&self) -> Vec<Metric> {
        METRICS.to_vec()
    }

    async fn last_sync(&self, p: &SourceParticipant) -> Result<Option<DateTime<Utc>>, SourceError> {
        Ok(Some(self.device_last_sync(seed_of(p)?, p)))
    }

    async fn fetch(
        &self,
        p: &SourceParticipant,
        metric: Metric,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Fetched, SourceError> {
        let seed = seed_of(p)?;
        let synced = self.device_last_sync(seed, p);
        let profile = Profile::new(seed, p.id.as_str());
        let last = self.until.map_or(to, |u| u.min(to));
        let mut samples = Vec::new();
        for day in from.iter_days().take_while(|d| *d <= last) {
            let generator = Day {
                seed,
                participant: &p.id,
                tz: p.timezone,
                day,
                profile: &profile,
            };
            let start = local_day_start(day, p.timezone);
            let night = plan::Night::new(seed, p.id.as_str(), day);
            samples.extend(
                generator
                    .samples(metric)
                    .into_iter()
                    .filter(|s| generate::known_at(metric, s, start, night) <= synced),
            );
        }
        Ok(Fetched {
            samples,
            incomplete_from: None,
        })
    }
}

#[cfg(test)]
mod tests;
