//! Which calls cover a metric over a range of local days, with only the filters the API
//! accepts (reference §3, as observed live): sample types filter on
//! `{type}.sample_time.physical_time`, interval types on `{type}.interval.start_time`, daily
//! types on `{type}.date`, and sleep on `sleep.interval.end_time` (a night belongs to the day it
//! ends, like Fitbit's date of sleep). Physical times are RFC 3339 in UTC. `total-calories` is
//! rollup-only, so calories come from `dataPoints:rollUp` in one-minute windows.
//!
//! Every list follows `nextPageToken` until it is empty or absent: a page may be empty and still
//! carry a token, and the last page may be `{}`. Intraday types are fetched one local day per
//! list, so when the quota runs out part-way the days already fetched are kept and the rest is
//! reported as `incomplete_from`.

use chrono::{DateTime, Days, Duration, NaiveDate, SecondsFormat, Utc};
use serde_json::{Value, json};
use wearhouse_core::{Metric, Sample};

use super::api::{Call, GoogleApi};
use super::parse;
use crate::sources::fitbit::localtime::day_start;
use crate::sources::{Fetched, SourceError, SourceParticipant};

/// How a data type records time, which decides its filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sample,
    Interval,
    Daily,
    Sleep,
    /// Read through `dataPoints:rollUp`.
    Rollup,
}

/// The Google data type behind a catalogue metric.
#[derive(Debug, Clone, Copy)]
pub struct TypeSpec {
    /// Path id, kebab-case.
    pub kebab: &'static str,
    /// Filter prefix, snake_case.
    pub snake: &'static str,
    /// JSON key of the point body, lowerCamelCase.
    pub key: &'static str,
    pub kind: Kind,
}

/// The metrics this source delivers, in catalogue order.
pub const METRICS: [Metric; 10] = [
    Metric::HeartRate,
    Metric::Steps,
    Metric::Calories,
    Metric::Distance,
    Metric::ActiveZoneMinutes,
    Metric::SleepStage,
    Metric::Spo2,
    Metric::HrvRmssd,
    Metric::BreathingRate,
    Metric::RestingHeartRate,
];

/// The data type of `metric`, if Google has one.
pub fn spec(metric: Metric) -> Option<TypeSpec> {
    let s = |kebab, snake, key, kind| {
        Some(TypeSpec {
            kebab,
            snake,
            key,
            kind,
        })
    };
    match metric {
        Metric::HeartRate => s("heart-rate", "heart_rate", "heartRate", Kind::Sample),
        Metric::Spo2 => s(
            "oxygen-saturation",
            "oxygen_saturation",
            "oxygenSaturation",
            Kind::Sample,
        ),
        Metric::Steps => s("steps", "steps", "steps", Kind::Interval),
        Metric::Distance => s("distance", "distance", "distance", Kind::Interval),
        Metric::ActiveZoneMinutes => s(
            "active-zone-minutes",
            "active_zone_minutes",
            "activeZoneMinutes",
            Kind::Interval,
        ),
        Metric::SleepStage => s("sleep", "sleep", "sleep", Kind::Sleep),
        Metric::RestingHeartRate => s(
            "daily-resting-heart-rate",
            "daily_resting_heart_rate",
            "dailyRestingHeartRate",
            Kind::Daily,
        ),
        Metric::HrvRmssd => s(
            "daily-heart-rate-variability",
            "daily_heart_rate_variability",
            "dailyHeartRateVariability",
            Kind::Daily,
        ),
        Metric::BreathingRate => s(
            "daily-respiratory-rate",
            "daily_respiratory_rate",
            "dailyRespiratoryRate",
            Kind::Daily,
        ),
        Metric::Calories => s(
            "total-calories",
            "total_calories",
            "totalCalories",
            Kind::Rollup,
        ),
        Metric::Floors | Metric::SkinTempDelta => None,
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The filter selecting `[lo, hi)` of a data type: instants for physical-time members, civil
/// dates for daily types.
pub fn filter(
    spec: &TypeSpec,
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
    days: (NaiveDate, NaiveDate),
) -> String {
    let range = |member: String, a: String, b: String| {
        format!("{member} >= \"{a}\" AND {member} < \"{b}\"")
    };
    let p = spec.snake;
    match spec.kind {
        Kind::Sample => range(
            format!("{p}.sample_time.physical_time"),
            rfc3339(lo),
            rfc3339(hi),
        ),
        Kind::Interval => range(format!("{p}.interval.start_time"), rfc3339(lo), rfc3339(hi)),
        Kind::Sleep => range(format!("{p}.interval.end_time"), rfc3339(lo), rfc3339(hi)),
        Kind::Daily => range(format!("{p}.date"), days.0.to_string(), days.1.to_string()),
        Kind::Rollup => String::new(),
    }
}

/// Page size to ask for: the maximum (25 for sleep), since the defaults differ by type.
fn page_size(spec: &TypeSpec) -> u32 {
    if spec.kind == Kind::Sleep { 25 } else { 10_000 }
}

/// Every sample of a list, following page tokens to the end.
async fn list_all(
    api: &GoogleApi,
    p: &SourceParticipant,
    metric: Metric,
    spec: &TypeSpec,
    filter: &str,
) -> Result<Vec<Sample>, SourceError> {
    let path = format!("/v4/users/me/dataTypes/{}/dataPoints", spec.kebab);
    let mut token: Option<String> = None;
    let mut out = Vec::new();
    let size = page_size(spec).to_string();
    loop {
        let mut query: Vec<(&str, String)> =
            vec![("filter", filter.to_owned()), ("pageSize", size.clone())];
        if let Some(t) = &token {
            query.push(("pageToken", t.clone()));
        }
        let page = api
            .call(&p.id, Call::Get(&path, &query), metric.name())
            .await?;
        out.extend(
            parse::points(&p.id, p.timezone, metric, spec.key, &page)
                .map_err(|e| SourceError::Provider(format!("{metric}: {e}")))?,
        );
        match next_token(&page, token.as_deref())? {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

/// The next page token; `None` when it is empty or absent. A token equal to the one just used
/// would loop forever, so it is an error.
fn next_token(page: &Value, used: Option<&str>) -> Result<Option<String>, SourceError> {
    match page.get("nextPageToken").and_then(Value::as_str) {
        None | Some("") => Ok(None),
        Some(t) if Some(t) == used => Err(SourceError::Provider(
            "the API returned the same page token twice".into(),
        )),
        Some(t) => Ok(Some(t.to_owned())),
    }
}

/// kcal per minute over `[lo, hi)` through `dataPoints:rollUp` (lo on a whole minute).
async fn calories(
    api: &GoogleApi,
    p: &SourceParticipant,
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
) -> Result<Vec<Sample>, SourceError> {
    let path = "/v4/users/me/dataTypes/total-calories/dataPoints:rollUp";
    let mut token: Option<String> = None;
    let mut out = Vec::new();
    loop {
        let mut body = json!({"range": {"startTime": rfc3339(lo), "endTime": rfc3339(hi)},
                              "windowSize": "60s", "pageSize": 10_000});
        if let Some(t) = &token {
            body["pageToken"] = t.clone().into();
        }
        let page = api
            .call(&p.id, Call::Post(path, &body), Metric::Calories.name())
            .await?;
        out.extend(
            parse::calories(&p.id, &page)
                .map_err(|e| SourceError::Provider(format!("calories: {e}")))?,
        );
        match next_token(&page, token.as_deref())? {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

/// Samples of `metric` for local days `from..=to`, none before `not_before` (the instant from
/// which this source took over from another provider; see [`crate::migration`]).
pub async fn fetch(
    api: &GoogleApi,
    p: &SourceParticipant,
    metric: Metric,
    from: NaiveDate,
    to: NaiveDate,
    not_before: Option<DateTime<Utc>>,
) -> Result<Fetched, SourceError> {
    let Some(spec) = spec(metric) else {
        return Ok(Fetched::default());
    };
    let tz = p.timezone;
    let clip = |t: DateTime<Utc>| not_before.map_or(t, |n| t.max(n));
    match spec.kind {
        Kind::Daily | Kind::Sleep => {
            let (lo, hi) = (clip(day_start(tz, from)), day_start(tz, to + Days::new(1)));
            if lo >= hi {
                return Ok(Fetched::default());
            }
            let f = filter(&spec, lo, hi, (from, to + Days::new(1)));
            let samples = list_all(api, p, metric, &spec, &f).await?;
            Ok(Fetched {
                samples,
                incomplete_from: None,
            })
        }
        Kind::Sample | Kind::Interval | Kind::Rollup => {
            let mut out = Fetched::default();
            let mut day = from;
            while day <= to {
                let mut lo = clip(day_start(tz, day));
                let hi = day_start(tz, day + Days::new(1));
                if spec.kind == Kind::Rollup {
                    // Rollup windows must line up with the window size.
                    lo = DateTime::from_timestamp(lo.timestamp().div_euclid(60) * 60, 0)
                        .expect("minute");
                }
                if lo < hi {
                    let got = if spec.kind == Kind::Rollup {
                        calories(api, p, lo, hi).await
                    } else {
                        list_all(api, p, metric, &spec, &filter(&spec, lo, hi, (day, day))).await
                    };
                    match got {
                        Ok(samples) => out.samples.extend(samples),
                        Err(e @ SourceError::QuotaExhausted { .. }) if !out.samples.is_empty() => {
                            tracing::info!(%day, error = %e, "google health quota ran out mid-range; keeping the days fetched");
                            out.incomplete_from = Some(day);
                            return Ok(out);
                        }
                        Err(e) => return Err(e),
                    }
                }
                day = day + Days::new(1);
            }
            Ok(out)
        }
    }
}

/// The device's last sync: the newest `lastSyncTime` of the paired devices; when no device
/// reports one, the newest heart-rate or steps data point of the last 30 days.
pub async fn last_sync(
    api: &GoogleApi,
    p: &SourceParticipant,
) -> Result<Option<DateTime<Utc>>, SourceError> {
    let mut token: Option<String> = None;
    let mut newest: Option<DateTime<Utc>> = None;
    loop {
        let mut query = vec![("pageSize", "100".to_owned())];
        if let Some(t) = &token {
            query.push(("pageToken", t.clone()));
        }
        let page = api
            .call(
                &p.id,
                Call::Get("/v4/users/me/pairedDevices", &query),
                "pairedDevices",
            )
            .await?;
        for device in page["pairedDevices"].as_array().into_iter().flatten() {
            if let Some(t) = parse::instant(&device["lastSyncTime"]) {
                newest = newest.max(Some(t));
            }
        }
        match next_token(&page, token.as_deref())? {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    if newest.is_some() {
        return Ok(newest);
    }
    let now = Utc::now();
    for metric in [Metric::HeartRate, Metric::Steps] {
        let spec = spec(metric).expect("listed type");
        newest =
            newest.max(latest_point(api, p, metric, &spec, now - Duration::days(30), now).await?);
    }
    Ok(newest)
}

/// The newest point's time of a list (lists are newest first): the first point of the first
/// non-empty page.
async fn latest_point(
    api: &GoogleApi,
    p: &SourceParticipant,
    metric: Metric,
    spec: &TypeSpec,
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, SourceError> {
    let path = format!("/v4/users/me/dataTypes/{}/dataPoints", spec.kebab);
    let f = filter(spec, lo, hi, (lo.date_naive(), hi.date_naive()));
    let mut token: Option<String> = None;
    loop {
        let mut query = vec![("filter", f.clone()), ("pageSize", "1".to_owned())];
        if let Some(t) = &token {
            query.push(("pageToken", t.clone()));
        }
        let page = api
            // Named by its metric, so a scope the participant withheld is reported as the
            // scope of that data type.
            .call(&p.id, Call::Get(&path, &query), metric.name())
            .await?;
        if let Some(point) = page["dataPoints"].as_array().and_then(|a| a.first()) {
            let body = &point[spec.key];
            return Ok(parse::instant(&body["sampleTime"]["physicalTime"])
                .or_else(|| parse::instant(&body["interval"]["endTime"])));
        }
        match next_token(&page, token.as_deref())? {
            Some(t) => token = Some(t),
            None => return Ok(None),
        }
    }
}
