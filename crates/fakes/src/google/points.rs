//! The fake's data: every point derived from the user and the minute (or date) through a
//! seeded generator, in the JSON shapes of the v4 API (int64 as strings, zero fields left out,
//! UTC instants with the user's offset, civil times without a zone; sleep without civil
//! fields, as captured live).

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use serde_json::{Map, Value, json};

use super::FakeGoogleUser;
use super::filter::{DataType, Field, FieldValue, Kind};
use crate::localtime::day_start;
use crate::rng::Rng;

/// One generated data point and the times its filter members refer to.
pub(super) struct Point {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub date: Option<NaiveDate>,
    pub tz: Tz,
    pub json: Value,
}

impl Point {
    /// The value a filter member compares against.
    pub fn field(&self, f: Field) -> FieldValue {
        let civil = |t: DateTime<Utc>| FieldValue::Civil(t.with_timezone(&self.tz).naive_local());
        match f {
            Field::Start => FieldValue::Instant(self.start),
            Field::End => FieldValue::Instant(self.end),
            Field::CivilStart => civil(self.start),
            Field::CivilEnd => civil(self.end),
            Field::Date => FieldValue::Date(self.date.unwrap_or(self.start.date_naive())),
        }
    }
}

fn offset(tz: Tz, t: DateTime<Utc>) -> String {
    format!(
        "{}s",
        tz.offset_from_utc_datetime(&t.naive_utc())
            .fix()
            .local_minus_utc()
    )
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

fn date_json(d: NaiveDate) -> Value {
    json!({"year": d.year(), "month": d.month(), "day": d.day()})
}

/// A CivilDateTime with zero fields left out (07:00 is `{"hours":7}`, midnight `{}`).
fn civil_json(t: NaiveDateTime) -> Value {
    let mut time = Map::new();
    for (k, v) in [
        ("hours", t.hour()),
        ("minutes", t.minute()),
        ("seconds", t.second()),
    ] {
        if v != 0 {
            time.insert(k.into(), v.into());
        }
    }
    json!({"date": date_json(t.date()), "time": time})
}

fn source() -> Value {
    json!({"recordingMethod": "PASSIVELY_MEASURED", "device": {"displayName": "Charge 6"}, "platform": "FITBIT"})
}

fn interval_json(tz: Tz, start: DateTime<Utc>, end: DateTime<Utc>, civil: bool) -> Value {
    let mut v = json!({
        "startTime": rfc3339(start), "startUtcOffset": offset(tz, start),
        "endTime": rfc3339(end), "endUtcOffset": offset(tz, end),
    });
    if civil {
        v["civilStartTime"] = civil_json(start.with_timezone(&tz).naive_local());
        v["civilEndTime"] = civil_json(end.with_timezone(&tz).naive_local());
    }
    v
}

/// Steps of a minute (0 when the user was not walking), shared by steps, distance and AZM.
fn steps_in(user: &str, tz: Tz, minute: DateTime<Utc>) -> Option<i64> {
    let hour = minute.with_timezone(&tz).hour();
    let mut r = Rng::new(user, "steps", minute.timestamp() / 60);
    if !(7..22).contains(&hour) || r.below(3) != 0 {
        return None;
    }
    // Zero-step minutes exist (the point is there, its count is left out).
    Some((r.below(140) - 10).max(0))
}

/// Points of `t` whose day or instant may fall in `[lo, hi)`; the caller applies the filter.
pub(super) fn generate(
    t: &DataType,
    user: &FakeGoogleUser,
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
) -> Vec<Point> {
    let Some(last_sync) = user.last_sync else {
        return Vec::new();
    };
    let hi = hi.min(last_sync);
    let tz = user.timezone;
    let id = user.health_user_id.as_str();
    let mut out = Vec::new();
    match t.kind {
        Kind::Sample | Kind::Interval => {
            let mut minute =
                DateTime::from_timestamp(lo.timestamp().div_euclid(60) * 60, 0).expect("minute");
            while minute < hi {
                out.extend(
                    minute_points(t, id, tz, minute)
                        .into_iter()
                        .filter(|p| p.end <= last_sync),
                );
                minute += Duration::minutes(1);
            }
        }
        Kind::Sleep | Kind::Daily => {
            let mut d = lo.with_timezone(&tz).date_naive() - Duration::days(1);
            let last = hi.with_timezone(&tz).date_naive() + Duration::days(1);
            while d <= last {
                let p = if t.kind == Kind::Sleep {
                    sleep(user, d)
                } else {
                    daily(t, id, tz, d)
                };
                // A night or a day's summary exists once the device synced after it ended.
                if p.end <= last_sync {
                    out.push(p);
                }
                d += Duration::days(1);
            }
        }
        Kind::RollupOnly => {}
    }
    out
}

fn minute_points(t: &DataType, id: &str, tz: Tz, minute: DateTime<Utc>) -> Vec<Point> {
    let local_hour = minute.with_timezone(&tz).hour();
    let point = |start: DateTime<Utc>, end: DateTime<Utc>, body: Value| {
        let mut json = json!({"dataSource": source()});
        json[t.key] = body;
        Point {
            start,
            end,
            date: None,
            tz,
            json,
        }
    };
    let sample_time = |at: DateTime<Utc>| {
        json!({"physicalTime": rfc3339(at), "utcOffset": offset(tz, at),
               "civilTime": civil_json(at.with_timezone(&tz).naive_local())})
    };
    let end = minute + Duration::minutes(1);
    match t.kebab {
        "heart-rate" => {
            let mut r = Rng::new(id, "hr", minute.timestamp() / 60);
            if r.below(20) == 0 {
                return Vec::new(); // not worn
            }
            let base = if (0..6).contains(&local_hour) { 52 } else { 68 };
            [0, 20, 40]
                .into_iter()
                .map(|s| {
                    let at = minute + Duration::seconds(s + r.below(15));
                    let bpm = base + r.below(30);
                    point(
                        at,
                        at,
                        json!({"sampleTime": sample_time(at), "beatsPerMinute": bpm.to_string()}),
                    )
                })
                .collect()
        }
        "oxygen-saturation" => {
            if !(1..6).contains(&local_hour) {
                return Vec::new();
            }
            let pct = 93.0 + Rng::new(id, "spo2", minute.timestamp() / 60).below(60) as f64 / 10.0;
            vec![point(
                minute,
                minute,
                json!({"sampleTime": sample_time(minute), "percentage": pct}),
            )]
        }
        "steps" | "distance" | "active-zone-minutes" => {
            let Some(steps) = steps_in(id, tz, minute) else {
                return Vec::new();
            };
            let mut body = json!({"interval": interval_json(tz, minute, end, true)});
            match t.kebab {
                "steps" if steps > 0 => body["count"] = steps.to_string().into(),
                "distance" if steps > 0 => body["millimeters"] = (steps * 762).to_string().into(),
                "active-zone-minutes" => {
                    if steps < 100 {
                        return Vec::new();
                    }
                    let (zone, azm) = if steps >= 120 {
                        ("CARDIO", 2)
                    } else {
                        ("FAT_BURN", 1)
                    };
                    body["activeZoneMinutes"] = azm.to_string().into();
                    body["heartRateZone"] = zone.into();
                }
                _ => {}
            }
            vec![point(minute, end, body)]
        }
        _ => Vec::new(),
    }
}

/// The Google stage type of a Fitbit level.
fn stage_type(level: &str) -> &'static str {
    match level {
        "light" => "LIGHT",
        "deep" => "DEEP",
        "rem" => "REM",
        "asleep" => "ASLEEP",
        "restless" => "RESTLESS",
        _ => "AWAKE",
    }
}

/// The night that ends on local day `d`: the same night the Fitbit fake serves for the
/// account's former Fitbit user, with its short wakes as `shortAwakenings`.
fn sleep(user: &FakeGoogleUser, d: NaiveDate) -> Point {
    let tz = user.timezone;
    let id = user.health_user_id.as_str();
    let seed = user.legacy_user_id.as_deref().unwrap_or(id);
    let n = crate::sleep::night(seed, tz, d);
    let span = |at: DateTime<Utc>, stop: DateTime<Utc>| {
        json!({"startTime": rfc3339(at), "startUtcOffset": offset(tz, at),
               "endTime": rfc3339(stop), "endUtcOffset": offset(tz, stop)})
    };
    let mut stages = Vec::new();
    let mut minutes: std::collections::BTreeMap<&str, i64> = Default::default();
    for (at, level, secs) in &n.segments {
        let label = stage_type(level);
        *minutes.entry(label).or_default() += secs / 60;
        let mut stage = span(*at, *at + Duration::seconds(*secs));
        stage["type"] = label.into();
        stages.push(stage);
    }
    let short: Vec<Value> = n
        .short
        .iter()
        .map(|(at, _, secs)| span(*at, *at + Duration::seconds(*secs)))
        .collect();
    let awake = minutes.get("AWAKE").copied().unwrap_or(0);
    let total = (n.end - n.start).num_minutes();
    let mut summary = json!({"minutesInSleepPeriod": total.to_string(), "minutesAsleep": (total - awake).to_string(),
        "stagesSummary": minutes.iter().map(|(k, m)| json!({"type": k, "minutes": m.to_string()})).collect::<Vec<_>>()});
    if awake > 0 {
        summary["minutesAwake"] = awake.to_string().into();
    }
    let name = format!(
        "users/{id}/dataTypes/sleep/dataPoints/{}",
        d.num_days_from_ce()
    );
    let mut body = json!({"interval": interval_json(tz, n.start, n.end, false),
        "type": if n.classic { "CLASSIC" } else { "STAGES" }, "stages": stages,
        "metadata": {"stagesStatus": "SUCCEEDED", "processed": true, "mainSleep": true},
        "summary": summary});
    // proto3 leaves out an empty repeated field.
    if !short.is_empty() {
        body["shortAwakenings"] = short.into();
    }
    let json = json!({"name": name, "dataSource": {"recordingMethod": "DERIVED", "platform": "FITBIT"},
        "sleep": body});
    Point {
        start: n.start,
        end: n.end,
        date: Some(d),
        tz,
        json,
    }
}

/// One day's summary of a daily type.
fn daily(t: &DataType, id: &str, tz: Tz, d: NaiveDate) -> Point {
    let mut r = Rng::new(id, t.kebab, d.num_days_from_ce().into());
    let body = match t.kebab {
        "daily-resting-heart-rate" => json!({"beatsPerMinute": (52 + r.below(15)).to_string()}),
        "daily-heart-rate-variability" => {
            json!({"averageHeartRateVariabilityMilliseconds": 20.0 + r.below(600) as f64 / 10.0,
                                                  "nonRemHeartRateBeatsPerMinute": (50 + r.below(10)).to_string()})
        }
        _ => json!({"breathsPerMinute": 12.0 + r.below(60) as f64 / 10.0}),
    };
    let mut body = body;
    body["date"] = date_json(d);
    let mut json = json!({"dataSource": source()});
    json[t.key] = body;
    // Computed after the night: available from 08:00 local.
    let start = day_start(tz, d);
    Point {
        start,
        end: start + Duration::hours(8),
        date: Some(d),
        tz,
        json,
    }
}

/// kcal of a minute, for the `total-calories` rollup.
pub(super) fn kcal(user: &FakeGoogleUser, minute: DateTime<Utc>) -> f64 {
    let steps = steps_in(&user.health_user_id, user.timezone, minute).unwrap_or(0);
    1.1 + steps as f64 * 0.04
        + Rng::new(&user.health_user_id, "kcal", minute.timestamp() / 60).below(10) as f64 / 100.0
}
