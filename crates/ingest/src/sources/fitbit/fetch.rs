//! Which requests cover a metric over a range of local days, within Fitbit's per-call range
//! limits: intraday one UTC day per call (24 h), SpO2/HRV/breathing rate/temperature 30 days,
//! sleep 100 days, heart-rate daily summaries (resting heart rate) one year.
//!
//! When the quota runs out part-way through a range, the days already fetched are returned
//! with `incomplete_from` at the first day not fetched, so the pipeline keeps what it has and
//! the next run resumes there; with nothing fetched yet the quota error is returned.

use std::time::Duration;

use chrono::{Days, NaiveDate};
use serde_json::Value;
use wearhouse_core::{Metric, Sample};

use super::localtime::day_start;
use super::{FitbitApi, HeartRateDetail, parse};
use crate::sources::{Fetched, SourceError, SourceParticipant};

/// The latest tracker sync.
pub(super) async fn last_sync(
    api: &FitbitApi,
    p: &SourceParticipant,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, SourceError> {
    let body: Value = api
        .get(&p.id, "/1/user/-/devices.json", &[], "devices")
        .await?;
    parse::last_sync(p.timezone, &body).map_err(|e| provider(Some("devices"), e))
}

fn provider(what: Option<&str>, e: parse::ParseError) -> SourceError {
    SourceError::Provider(format!("{}: {e}", what.unwrap_or("fitbit")))
}

/// Samples of `metric` for local days `from..=to`.
pub(super) async fn fetch(
    api: &FitbitApi,
    detail: HeartRateDetail,
    pending: PendingRetry,
    p: &SourceParticipant,
    metric: Metric,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Fetched, SourceError> {
    let (resource, level, scale) = match metric {
        Metric::HeartRate => ("heart", detail.path(), 1.0),
        Metric::Steps => ("steps", "1min", 1.0),
        Metric::Calories => ("calories", "1min", 1.0),
        // Kilometres (metric locale, see `api`) to metres.
        Metric::Distance => ("distance", "1min", 1000.0),
        Metric::Floors => ("floors", "1min", 1.0),
        Metric::ActiveZoneMinutes => ("active-zone-minutes", "1min", 1.0),
        Metric::RestingHeartRate => {
            return ranged(api, p, metric, from, to, 365, |a, b| {
                format!("/1/user/-/activities/heart/date/{a}/{b}.json")
            })
            .await;
        }
        Metric::SleepStage => return sleep(api, p, pending, from, to).await,
        Metric::Spo2 => {
            return ranged(api, p, metric, from, to, 30, |a, b| {
                format!("/1/user/-/spo2/date/{a}/{b}/all.json")
            })
            .await;
        }
        Metric::HrvRmssd => {
            return ranged(api, p, metric, from, to, 30, |a, b| {
                format!("/1/user/-/hrv/date/{a}/{b}/all.json")
            })
            .await;
        }
        Metric::BreathingRate => {
            return ranged(api, p, metric, from, to, 30, |a, b| {
                format!("/1/user/-/br/date/{a}/{b}/all.json")
            })
            .await;
        }
        Metric::SkinTempDelta => {
            return ranged(api, p, metric, from, to, 30, |a, b| {
                format!("/1/user/-/temp/skin/date/{a}/{b}.json")
            })
            .await;
        }
    };
    intraday(api, p, metric, resource, level, scale, from, to).await
}

/// Intraday data in UTC (`?timezone=UTC`): the local days `from..=to` span the instants
/// `[start of from, start of to+1)`, which touch one or two more UTC days than local days;
/// each UTC day is one call and only samples inside the span are kept.
#[allow(clippy::too_many_arguments)]
async fn intraday(
    api: &FitbitApi,
    p: &SourceParticipant,
    metric: Metric,
    resource: &str,
    level: &str,
    scale: f64,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Fetched, SourceError> {
    let start = day_start(p.timezone, from);
    let end = day_start(p.timezone, to + Days::new(1));
    let first = start.date_naive();
    let last = (end - chrono::Duration::seconds(1)).date_naive();
    let mut out = Fetched::default();
    let mut day = first;
    while day <= last {
        let path = format!("/1/user/-/activities/{resource}/date/{day}/1d/{level}.json");
        let body: Value = match api
            .get(&p.id, &path, &[("timezone", "UTC")], metric.name())
            .await
        {
            Ok(b) => b,
            Err(e) => return partial(out, e, local_day_of(p, day).max(from)),
        };
        let samples = parse::intraday(&p.id, metric, &body, resource, day, scale)
            .map_err(|e| provider(Some(metric.name()), e))?;
        out.samples.extend(
            samples
                .into_iter()
                .filter(|s| start <= s.timestamp && s.timestamp < end),
        );
        day = day + Days::new(1);
    }
    Ok(out)
}

/// The local day in which UTC day `d` starts.
fn local_day_of(p: &SourceParticipant, d: NaiveDate) -> NaiveDate {
    d.and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .with_timezone(&p.timezone)
        .date_naive()
}

/// Keeps what was fetched when the quota ran out mid-range; other errors propagate.
fn partial(mut out: Fetched, e: SourceError, resume: NaiveDate) -> Result<Fetched, SourceError> {
    match e {
        SourceError::QuotaExhausted { .. } if !out.samples.is_empty() => {
            tracing::info!(%resume, "fitbit quota ran out mid-range; keeping the days fetched");
            out.incomplete_from = Some(resume);
            Ok(out)
        }
        e => Err(e),
    }
}

/// Date-range endpoints in chunks of at most `max_days`.
async fn ranged(
    api: &FitbitApi,
    p: &SourceParticipant,
    metric: Metric,
    from: NaiveDate,
    to: NaiveDate,
    max_days: u64,
    path: impl Fn(NaiveDate, NaiveDate) -> String,
) -> Result<Fetched, SourceError> {
    let mut out = Fetched::default();
    for (a, b) in chunks(from, to, max_days) {
        let body: Value = match api.get(&p.id, &path(a, b), &[], metric.name()).await {
            Ok(b) => b,
            Err(e) => return partial(out, e, a),
        };
        let tz = p.timezone;
        let samples: Vec<Sample> = match metric {
            Metric::RestingHeartRate => parse::resting_heart_rate(&p.id, tz, &body),
            Metric::Spo2 => parse::spo2(&p.id, tz, &body),
            Metric::HrvRmssd => parse::hrv(&p.id, tz, &body),
            Metric::BreathingRate => parse::breathing_rate(&p.id, tz, &body),
            Metric::SkinTempDelta => parse::skin_temperature(&p.id, tz, &body),
            other => unreachable!("{other} is not a date-range metric"),
        }
        .map_err(|e| provider(Some(metric.name()), e))?;
        out.samples.extend(samples);
    }
    Ok(out)
}

/// How long a run keeps asking for a sleep log that Fitbit is still processing.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingRetry {
    /// Further requests for a range that came back pending.
    pub tries: u32,
    /// Total time one fetch may wait for processing to finish.
    pub max_wait: Duration,
}

/// Wait when a pending answer carries no `retryDuration`.
const DEFAULT_PENDING_WAIT: Duration = Duration::from_secs(30);

/// Sleep logs by date of sleep (the date the sleep ended). A log still being processed
/// (`meta.state: pending`) is asked for again after its `retryDuration`, within `retry`; if it
/// is still pending then, it is skipped and its date becomes `incomplete_from`, so a later run
/// fetches it. When the whole response is marked pending Fitbit does not say which log it
/// means; the earliest requested date without a finished log is taken (the newest night in a
/// daily run), or the last date.
async fn sleep(
    api: &FitbitApi,
    p: &SourceParticipant,
    retry: PendingRetry,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Fetched, SourceError> {
    let mut out = Fetched::default();
    let mut incomplete: Option<NaiveDate> = None;
    let mut waited = Duration::ZERO;
    for (a, b) in chunks(from, to, 100) {
        let path = format!("/1.2/user/-/sleep/date/{a}/{b}.json");
        let mut tries = 0;
        let (parsed, first_incomplete) = loop {
            let body: Value = match api.get(&p.id, &path, &[], Metric::SleepStage.name()).await {
                Ok(body) => body,
                Err(e) => {
                    let mut kept = partial(out, e, a)?;
                    kept.incomplete_from = Some(incomplete.map_or(a, |i| i.min(a)));
                    return Ok(kept);
                }
            };
            let parsed = parse::sleep(&p.id, p.timezone, &body)
                .map_err(|e| provider(Some(Metric::SleepStage.name()), e))?;
            let mut first_incomplete = parsed.pending_dates.iter().next().copied();
            if parsed.pending {
                let missing = a
                    .iter_days()
                    .take_while(|d| *d <= b)
                    .find(|d| !parsed.dates.contains(d))
                    .unwrap_or(b);
                first_incomplete = Some(first_incomplete.map_or(missing, |d| d.min(missing)));
            }
            let Some(date) = first_incomplete else {
                break (parsed, None);
            };
            let wait = parsed.retry_after.unwrap_or(DEFAULT_PENDING_WAIT);
            if tries >= retry.tries || waited + wait > retry.max_wait {
                tracing::info!(participant = %p.id, %date, tries, ?waited, "fitbit sleep log still processing; left to a later run");
                break (parsed, Some(date));
            }
            tries += 1;
            waited += wait;
            tracing::info!(participant = %p.id, %date, ?wait, tries, "fitbit sleep log still processing; asking again");
            tokio::time::sleep(wait).await;
        };
        if let Some(d) = first_incomplete {
            incomplete = Some(incomplete.map_or(d, |i| i.min(d)));
        }
        out.samples.extend(parsed.samples);
    }
    out.incomplete_from = incomplete;
    Ok(out)
}

/// `[from, to]` split into consecutive ranges of at most `max_days` days.
fn chunks(from: NaiveDate, to: NaiveDate, max_days: u64) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    let mut a = from;
    while a <= to {
        let b = (a + Days::new(max_days - 1)).min(to);
        out.push((a, b));
        a = b + Days::new(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_split_at_the_per_call_limit() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(
            chunks(d("2025-01-01"), d("2025-03-01"), 30),
            vec![
                (d("2025-01-01"), d("2025-01-30")),
                (d("2025-01-31"), d("2025-03-01")),
            ]
        );
        assert_eq!(
            chunks(d("2025-01-01"), d("2025-01-01"), 30),
            vec![(d("2025-01-01"), d("2025-01-01"))]
        );
    }
}
