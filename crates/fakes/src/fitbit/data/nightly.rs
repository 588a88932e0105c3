//! Sleep logs and the nightly series measured during the main sleep: SpO2, HRV, breathing
//! rate and skin temperature.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde_json::{Value, json};

use super::{Ctx, Outcome};
use crate::rng::Rng;
use crate::sleep::Night;

/// The main sleep that ends on local date `d`, if the tracker has synced it.
fn night(c: &Ctx<'_>, d: NaiveDate) -> Option<Night> {
    let n = crate::sleep::night(&c.user.user_id, c.user.timezone, d);
    (n.end <= c.cutoff()).then_some(n)
}

fn local_fmt(c: &Ctx<'_>, t: DateTime<Utc>, fmt: &str) -> String {
    t.with_timezone(&c.user.timezone).format(fmt).to_string()
}

pub(super) fn sleep(c: &Ctx<'_>, a: &str, b: &str, by_date: bool) -> Outcome {
    c.need("sleep", "sleep")?;
    let (a, b) = c.range(a, b, 100)?;
    let mut logs = Vec::new();
    let mut pending = false;
    for d in a.iter_days().take_while(|d| *d <= b) {
        if c.pending_sleep.contains(&d) {
            pending = true;
            continue;
        }
        let Some(n) = night(c, d) else { continue };
        let f = "%Y-%m-%dT%H:%M:%S%.3f";
        let level = |(t, l, s): &(DateTime<Utc>, &str, i64)| json!({"dateTime": local_fmt(c, *t, f), "level": l, "seconds": s});
        let mut minutes: std::collections::BTreeMap<&str, (i64, i64)> = Default::default();
        for (_, l, s) in &n.segments {
            let e = minutes.entry(l).or_default();
            e.0 += 1;
            e.1 += s / 60;
        }
        let awake = if n.classic { "awake" } else { "wake" };
        let summary: serde_json::Map<String, Value> = minutes
            .iter()
            .map(|(l, (count, mins))| {
                let mut v = json!({"count": count, "minutes": mins});
                if !n.classic {
                    v["thirtyDayAvgMinutes"] = json!(mins);
                }
                (l.to_string(), v)
            })
            .collect();
        let in_bed = (n.end - n.start).num_minutes();
        let awake_min = minutes.get(awake).map_or(0, |m| m.1);
        let mut levels =
            json!({"data": n.segments.iter().map(level).collect::<Vec<_>>(), "summary": summary});
        if !n.classic {
            levels["shortData"] = n.short.iter().map(level).collect();
        }
        logs.push(json!({"logId": 40_000_000_000i64 + i64::from(d.num_days_from_ce()), "dateOfSleep": d.to_string(),
            "startTime": local_fmt(c, n.start, f), "endTime": local_fmt(c, n.end, f),
            "duration": (n.end - n.start).num_milliseconds(), "efficiency": 92, "infoCode": 0, "isMainSleep": true,
            "logType": "auto_detected", "type": if n.classic { "classic" } else { "stages" },
            "minutesAsleep": in_bed - awake_min, "minutesAwake": awake_min, "minutesToFallAsleep": 0,
            "minutesAfterWakeup": 0, "timeInBed": in_bed, "levels": levels}));
    }
    let mut body = json!({"sleep": logs});
    if by_date {
        body["summary"] =
            json!({"totalSleepRecords": body["sleep"].as_array().map_or(0, Vec::len)});
    }
    if pending {
        body["meta"] = json!({"state": "pending", "retryDuration": c.user.sleep_retry_ms});
    }
    Ok(body)
}

pub(super) fn spo2_day(c: &Ctx<'_>, d: NaiveDate) -> Option<Value> {
    let n = night(c, d)?;
    let mut r = Rng::new(&c.user.user_id, "spo2", i64::from(d.num_days_from_ce()));
    let mut t = n.start + Duration::minutes(30);
    let mut minutes = Vec::new();
    while t < n.end - Duration::minutes(30) {
        minutes.push(json!({"value": 94.0 + r.below(50) as f64 / 10.0, "minute": local_fmt(c, t, "%Y-%m-%dT%H:%M:%S")}));
        t += Duration::minutes(1);
    }
    Some(json!({"dateTime": d.to_string(), "minutes": minutes}))
}

pub(super) fn hrv_day(c: &Ctx<'_>, d: NaiveDate) -> Option<Value> {
    let n = night(c, d)?;
    let mut r = Rng::new(&c.user.user_id, "hrv", i64::from(d.num_days_from_ce()));
    let mut t = n.start + Duration::minutes(15);
    let mut minutes = Vec::new();
    while t < n.end {
        minutes.push(json!({"minute": local_fmt(c, t, "%Y-%m-%dT%H:%M:%S%.3f"),
            "value": {"rmssd": 20.0 + r.below(400) as f64 / 10.0, "coverage": 0.9, "hf": 150.0, "lf": 400.0}}));
        t += Duration::minutes(5);
    }
    Some(json!({"dateTime": d.to_string(), "minutes": minutes}))
}

pub(super) fn br_day(c: &Ctx<'_>, d: NaiveDate) -> Option<Value> {
    night(c, d)?;
    let mut r = Rng::new(&c.user.user_id, "br", i64::from(d.num_days_from_ce()));
    let full = 12.0 + r.below(50) as f64 / 10.0;
    Some(json!({"dateTime": d.to_string(), "value": {
        "deepSleepSummary": {"breathingRate": full - 0.8}, "remSleepSummary": {"breathingRate": full + 0.6},
        "lightSleepSummary": {"breathingRate": full}, "fullSleepSummary": {"breathingRate": full}}}))
}

pub(super) fn temp_day(c: &Ctx<'_>, d: NaiveDate) -> Option<Value> {
    night(c, d)?;
    let mut r = Rng::new(&c.user.user_id, "temp", i64::from(d.num_days_from_ce()));
    Some(
        json!({"dateTime": d.to_string(), "value": {"nightlyRelative": (r.below(21) - 10) as f64 / 10.0},
                "logType": "dedicated_temp_sensor"}),
    )
}

#[allow(clippy::too_many_arguments)]
pub(super) fn nightly_range(
    c: &Ctx<'_>,
    a: &str,
    b: &str,
    scope: &str,
    what: &str,
    key: &str,
    day: fn(&Ctx<'_>, NaiveDate) -> Option<Value>,
) -> Outcome {
    c.need(scope, what)?;
    let (a, b) = c.range(a, b, 30)?;
    let days: Vec<Value> = a
        .iter_days()
        .take_while(|d| *d <= b)
        .filter_map(|d| day(c, d))
        .collect();
    Ok(json!({key: days}))
}
