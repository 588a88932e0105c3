//! Fitbit JSON to samples. Responses are read as `serde_json::Value` where Fitbit's shapes
//! vary (intraday keys per resource, two AZM shapes, SpO2 as object or array, summary values
//! as numbers or strings) and as typed structs where they do not (sleep logs).

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::Value;
use wearhouse_core::{Metric, ParticipantId, Sample};

use super::localtime::{day_start, parse_local, to_utc};
use crate::sources::sleep_stages::{self, Segment};

/// A response that did not have the shape Fitbit documents.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn date(v: Option<&Value>) -> Option<NaiveDate> {
    v?.as_str()?.parse().ok()
}

fn time_of_day(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .ok()
}

/// Intraday `dataset` of `activities-{resource}-intraday`, requested with `?timezone=UTC` for
/// the UTC day `day`: `time` is a UTC time of that day. Each value is multiplied by `scale`.
pub fn intraday(
    participant: &ParticipantId,
    metric: Metric,
    body: &Value,
    resource: &str,
    day: NaiveDate,
    scale: f64,
) -> Result<Vec<Sample>, ParseError> {
    let key = format!("activities-{resource}-intraday");
    let Some(set) = body.get(&key) else {
        return err(format!("missing {key:?}"));
    };
    if resource == "active-zone-minutes"
        && let Value::Array(days) = set
    {
        return azm_minutes(participant, days, day);
    }
    let Some(points) = set.get("dataset").and_then(Value::as_array) else {
        return err(format!("{key:?} has no dataset array"));
    };
    let mut out = Vec::with_capacity(points.len());
    for point in points {
        let t = point
            .get("time")
            .and_then(Value::as_str)
            .and_then(time_of_day)
            .ok_or_else(|| ParseError(format!("{key:?}: bad time in {point}")))?;
        let raw = point.get("value").unwrap_or(&Value::Null);
        // AZM's dataset shape carries an object per minute; its total is activeZoneMinutes.
        let value = raw
            .get("activeZoneMinutes")
            .map_or_else(|| number(raw), number)
            .ok_or_else(|| ParseError(format!("{key:?}: bad value in {point}")))?;
        let ts = day.and_time(t).and_utc();
        out.push(Sample::numeric(
            participant.clone(),
            metric,
            ts,
            value * scale,
        ));
    }
    Ok(out)
}

/// AZM's array shape: `[{dateTime, minutes:[{minute, value:{activeZoneMinutes, …}}]}]`, where
/// `minute` is either a time of `dateTime` or a full date-time (both UTC, as requested).
fn azm_minutes(
    participant: &ParticipantId,
    days: &[Value],
    day: NaiveDate,
) -> Result<Vec<Sample>, ParseError> {
    let mut out = Vec::new();
    for d in days {
        let base = date(d.get("dateTime")).unwrap_or(day);
        for m in d
            .get("minutes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let raw = m.get("minute").and_then(Value::as_str).unwrap_or("");
            let ts = match parse_local(raw) {
                Some(t) => t.and_utc(),
                None => match time_of_day(raw) {
                    Some(t) => base.and_time(t).and_utc(),
                    None => return err(format!("AZM: bad minute {raw:?}")),
                },
            };
            let value = m
                .get("value")
                .and_then(|v| v.get("activeZoneMinutes"))
                .and_then(number)
                .ok_or_else(|| ParseError(format!("AZM: bad value in {m}")))?;
            out.push(Sample::numeric(
                participant.clone(),
                Metric::ActiveZoneMinutes,
                ts,
                value,
            ));
        }
    }
    Ok(out)
}

/// Resting heart rate from the `activities-heart` daily summaries, one sample at the start of
/// each local day that has one (the field is missing on days without enough data).
pub fn resting_heart_rate(
    participant: &ParticipantId,
    tz: Tz,
    body: &Value,
) -> Result<Vec<Sample>, ParseError> {
    let Some(days) = body.get("activities-heart").and_then(Value::as_array) else {
        return err("missing \"activities-heart\" array");
    };
    let mut out = Vec::new();
    for d in days {
        let Some(day) = date(d.get("dateTime")) else {
            return err(format!("activities-heart: bad dateTime in {d}"));
        };
        if let Some(rhr) = d
            .get("value")
            .and_then(|v| v.get("restingHeartRate"))
            .and_then(number)
        {
            out.push(Sample::numeric(
                participant.clone(),
                Metric::RestingHeartRate,
                day_start(tz, day),
                rhr,
            ));
        }
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
struct SleepResponse {
    #[serde(default)]
    sleep: Vec<SleepLog>,
    #[serde(default)]
    meta: Option<Meta>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    state: Option<String>,
    /// Milliseconds after which Fitbit expects processing to be finished.
    #[serde(default)]
    retry_duration: Option<u64>,
}

impl Meta {
    fn pending(m: &Option<Meta>) -> bool {
        m.as_ref().and_then(|m| m.state.as_deref()) == Some("pending")
    }

    fn retry_after(m: &Option<Meta>) -> Option<std::time::Duration> {
        m.as_ref()?
            .retry_duration
            .map(std::time::Duration::from_millis)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SleepLog {
    date_of_sleep: NaiveDate,
    start_time: String,
    #[serde(default)]
    levels: Option<Levels>,
    #[serde(default)]
    meta: Option<Meta>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Levels {
    #[serde(default)]
    data: Vec<Level>,
    #[serde(default)]
    short_data: Vec<Level>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Level {
    date_time: String,
    level: String,
    seconds: i64,
}

/// Sleep stages from a v1.2 sleep response.
#[derive(Debug, Default)]
pub struct Sleep {
    /// 30-second `sleep_stage` samples, `shortData` applied over `data`.
    pub samples: Vec<Sample>,
    /// Dates of sleep that have a finished log in the response.
    pub dates: BTreeSet<NaiveDate>,
    /// Dates of sleep whose log is still being processed (a per-log `meta.state: pending`).
    pub pending_dates: BTreeSet<NaiveDate>,
    /// The whole response was marked `meta.state: pending`.
    pub pending: bool,
    /// The longest `meta.retryDuration` of a pending response or log: when to ask again.
    pub retry_after: Option<std::time::Duration>,
}

/// Expands every finished log into 30-second samples (label in `value_text`).
pub fn sleep(participant: &ParticipantId, tz: Tz, body: &Value) -> Result<Sleep, ParseError> {
    let response: SleepResponse = serde_json::from_value(body.clone())
        .map_err(|e| ParseError(format!("sleep response: {e}")))?;
    let mut out = Sleep {
        pending: Meta::pending(&response.meta),
        retry_after: Meta::retry_after(&response.meta),
        ..Sleep::default()
    };
    for log in response.sleep {
        if Meta::pending(&log.meta) {
            out.pending_dates.insert(log.date_of_sleep);
            out.retry_after = out.retry_after.max(Meta::retry_after(&log.meta));
            continue;
        }
        out.dates.insert(log.date_of_sleep);
        let Some(levels) = log.levels else { continue };
        let start = parse_local(&log.start_time)
            .ok_or_else(|| ParseError(format!("sleep: bad startTime {:?}", log.start_time)))?;
        let log_start = to_utc(tz, start, None);
        let mut lists: [Vec<Segment>; 2] = Default::default();
        for (list, out) in [&levels.data, &levels.short_data]
            .into_iter()
            .zip(&mut lists)
        {
            let mut floor = log_start;
            for item in list {
                let local = parse_local(&item.date_time).ok_or_else(|| {
                    ParseError(format!("sleep: bad level dateTime {:?}", item.date_time))
                })?;
                sleep_stages::check_length(item.seconds)
                    .map_err(|e| ParseError(format!("sleep: {e}")))?;
                // Each segment is converted at its start and expanded by elapsed seconds, so a
                // segment across a daylight-saving change keeps its true length.
                let seg_start = to_utc(tz, local, Some(floor));
                out.push(Segment {
                    start: seg_start,
                    seconds: item.seconds,
                    label: item.level.clone(),
                });
                floor = seg_start
                    .checked_add_signed(Duration::seconds(item.seconds))
                    .unwrap_or(seg_start);
            }
        }
        let [stages, short_wakes] = lists;
        out.samples
            .extend(sleep_stages::samples(participant, &stages, &short_wakes));
    }
    Ok(out)
}

/// `minutes` series (SpO2, HRV) of local date-times, read in order so a repeated hour resolves
/// forward; `value` extracts the number from each entry's `value`.
fn minute_series(
    participant: &ParticipantId,
    tz: Tz,
    metric: Metric,
    days: &[Value],
    value: impl Fn(&Value) -> Option<f64>,
) -> Result<Vec<Sample>, ParseError> {
    let mut out = Vec::new();
    for d in days {
        let mut floor = None;
        for m in d
            .get("minutes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let local = m
                .get("minute")
                .and_then(Value::as_str)
                .and_then(parse_local)
                .ok_or_else(|| ParseError(format!("{metric}: bad minute in {m}")))?;
            let Some(v) = m.get("value").and_then(&value) else {
                return err(format!("{metric}: bad value in {m}"));
            };
            let t = to_utc(tz, local, floor);
            floor = Some(t);
            out.push(Sample::numeric(participant.clone(), metric, t, v));
        }
    }
    Ok(out)
}

/// SpO2: by interval a top-level array of `{dateTime, minutes:[{minute, value}]}`, by date one
/// such object.
pub fn spo2(participant: &ParticipantId, tz: Tz, body: &Value) -> Result<Vec<Sample>, ParseError> {
    let days = match body {
        Value::Array(a) => a.clone(),
        Value::Object(_) => vec![body.clone()],
        _ => return err("spo2: expected an array or an object"),
    };
    minute_series(participant, tz, Metric::Spo2, &days, number)
}

/// HRV: `{"hrv":[{dateTime, minutes:[{minute, value:{rmssd,…}}]}]}` → `hrv_rmssd`.
pub fn hrv(participant: &ParticipantId, tz: Tz, body: &Value) -> Result<Vec<Sample>, ParseError> {
    let Some(days) = body.get("hrv").and_then(Value::as_array) else {
        return err("missing \"hrv\" array");
    };
    minute_series(participant, tz, Metric::HrvRmssd, days, |v| {
        v.get("rmssd").and_then(number)
    })
}

/// One value per night at the start of its local date, from `{key:[{dateTime, value}]}`.
fn nightly(
    participant: &ParticipantId,
    tz: Tz,
    metric: Metric,
    body: &Value,
    key: &str,
    value: impl Fn(&Value) -> Option<f64>,
) -> Result<Vec<Sample>, ParseError> {
    let Some(days) = body.get(key).and_then(Value::as_array) else {
        return err(format!("missing {key:?} array"));
    };
    let mut out = Vec::new();
    for d in days {
        let Some(day) = date(d.get("dateTime")) else {
            return err(format!("{key}: bad dateTime in {d}"));
        };
        if let Some(v) = d.get("value").and_then(&value) {
            out.push(Sample::numeric(
                participant.clone(),
                metric,
                day_start(tz, day),
                v,
            ));
        }
    }
    Ok(out)
}

/// Breathing rate: `fullSleepSummary.breathingRate` per night.
pub fn breathing_rate(
    participant: &ParticipantId,
    tz: Tz,
    body: &Value,
) -> Result<Vec<Sample>, ParseError> {
    nightly(participant, tz, Metric::BreathingRate, body, "br", |v| {
        v.get("fullSleepSummary")?
            .get("breathingRate")
            .and_then(number)
    })
}

/// Skin temperature: `nightlyRelative` (change from the participant's baseline) per night.
pub fn skin_temperature(
    participant: &ParticipantId,
    tz: Tz,
    body: &Value,
) -> Result<Vec<Sample>, ParseError> {
    nightly(
        participant,
        tz,
        Metric::SkinTempDelta,
        body,
        "tempSkin",
        |v| v.get("nightlyRelative").and_then(number),
    )
}

/// The latest `lastSyncTime` of the participant's trackers (scales do not carry wearable
/// data), in the participant's zone; `None` without a tracker.
pub fn last_sync(tz: Tz, body: &Value) -> Result<Option<DateTime<Utc>>, ParseError> {
    let Some(devices) = body.as_array() else {
        return err("devices: expected a top-level array");
    };
    let mut latest = None;
    for d in devices {
        if d.get("type").and_then(Value::as_str) != Some("TRACKER") {
            continue;
        }
        let Some(raw) = d.get("lastSyncTime").and_then(Value::as_str) else {
            continue;
        };
        let local = parse_local(raw)
            .ok_or_else(|| ParseError(format!("devices: bad lastSyncTime {raw:?}")))?;
        let t = to_utc(tz, local, None);
        latest = latest.max(Some(t));
    }
    Ok(latest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A segment whose `seconds` would be a sample every 30 s for millions of years (or
    /// overflow the calendar) is a malformed answer, not a night.
    #[test]
    fn a_sleep_segment_longer_than_a_day_is_an_error() {
        let p = ParticipantId::parse("P1").unwrap();
        for seconds in [86_401_i64, 1_000_000_000_000_000, -60] {
            let body = json!({"sleep": [{
                "dateOfSleep": "2025-06-02", "startTime": "2025-06-01T23:00:00.000",
                "endTime": "2025-06-02T06:00:00.000", "type": "stages",
                "levels": {"data": [{"dateTime": "2025-06-01T23:00:00.000", "level": "light",
                                     "seconds": seconds}], "shortData": []}}]});
            let e = sleep(&p, Tz::UTC, &body).unwrap_err();
            assert!(
                e.0.contains("segments are at most a day"),
                "{seconds}: {e:?}"
            );
        }
    }
}
