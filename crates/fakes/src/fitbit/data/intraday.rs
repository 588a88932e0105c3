//! Intraday series: heart rate by the second or minute, steps, calories, distance, floors and
//! Active Zone Minutes by the minute, and the daily heart-rate summary.

use chrono::{Datelike, Days, NaiveDate, TimeZone, Timelike, Utc};
use serde_json::{Value, json};

use super::super::AzmShape;
use super::{Ctx, Outcome, bad};
use crate::localtime::day_start;
use crate::rng::Rng;

fn local_hour(c: &Ctx<'_>, t: i64) -> u32 {
    Utc.timestamp_opt(t, 0)
        .unwrap()
        .with_timezone(&c.user.timezone)
        .hour()
}

fn steps_at(c: &Ctx<'_>, minute: i64) -> i64 {
    let mut r = Rng::new(&c.user.user_id, "steps", minute);
    let h = local_hour(c, minute * 60);
    if (7..22).contains(&h) && r.below(10) < 3 {
        60 + r.below(60)
    } else {
        0
    }
}

/// Sparse heart-rate readings in `[from, to)`: every 5–15 s, except whole hours off the wrist.
fn heart_seconds(c: &Ctx<'_>, from: i64, to: i64) -> Vec<(i64, i64)> {
    let cutoff = c.cutoff().timestamp();
    let mut out = Vec::new();
    for hour in from.div_euclid(3600)..=(to - 1).div_euclid(3600) {
        let mut r = Rng::new(&c.user.user_id, "hr", hour);
        if r.below(24) == 0 {
            continue;
        }
        let h = f64::from(local_hour(c, hour * 3600));
        let base = 64.0 + 8.0 * ((h - 16.0) / 24.0 * std::f64::consts::TAU).cos();
        let mut t = hour * 3600 + r.below(5);
        while t < (hour + 1) * 3600 {
            if t >= from && t < to && t < cutoff {
                let active = if steps_at(c, t.div_euclid(60)) > 0 {
                    30.0
                } else {
                    0.0
                };
                out.push((t, (base + active) as i64 + r.below(7)));
            }
            t += 5 + r.below(11);
        }
    }
    out
}

pub(super) fn heart_summary(c: &Ctx<'_>, d: NaiveDate) -> Option<Value> {
    if day_start(c.user.timezone, d) >= c.cutoff() {
        return None;
    }
    let mut r = Rng::new(&c.user.user_id, "rhr", i64::from(d.num_days_from_ce()));
    let mut value = json!({"customHeartRateZones": [], "heartRateZones": [
        {"name": "Out of Range", "min": 30, "max": 98, "minutes": 1180, "caloriesOut": 1510.4},
        {"name": "Fat Burn", "min": 98, "max": 125, "minutes": 210, "caloriesOut": 780.1},
        {"name": "Cardio", "min": 125, "max": 152, "minutes": 12, "caloriesOut": 95.3},
        {"name": "Peak", "min": 152, "max": 220, "minutes": 0, "caloriesOut": 0}]});
    // Some days have too little data for a resting heart rate; Fitbit then omits the field.
    if r.below(5) != 0 {
        value["restingHeartRate"] = json!(52 + r.below(12));
    }
    Some(json!({"dateTime": d.to_string(), "value": value}))
}

pub(super) fn intraday(c: &Ctx<'_>, res: &str, d: &str, level: &str) -> Outcome {
    let (scope, what) = if res == "heart" {
        ("heartrate", "heart rate")
    } else {
        ("activity", "activity")
    };
    c.need(scope, what)?;
    c.need_intraday()?;
    let d = c.date(d)?;
    let tz = c.user.timezone;
    let (from, to) = if c.utc {
        (
            d.and_hms_opt(0, 0, 0).unwrap().and_utc(),
            (d + Days::new(1)).and_hms_opt(0, 0, 0).unwrap().and_utc(),
        )
    } else {
        (day_start(tz, d), day_start(tz, d + Days::new(1)))
    };
    let label = |t: i64| {
        let t = Utc.timestamp_opt(t, 0).unwrap();
        if c.utc {
            t.format("%H:%M:%S").to_string()
        } else {
            t.with_timezone(&tz).format("%H:%M:%S").to_string()
        }
    };
    let (from, to) = (from.timestamp(), to.timestamp());
    let cutoff = c.cutoff().timestamp();
    let minutes = (from / 60..to / 60).filter(|m| m * 60 < cutoff);
    let date = d.to_string();
    match (res, level) {
        ("heart", "1sec" | "1min") => {
            let secs = heart_seconds(c, from, to);
            let dataset: Vec<Value> = if level == "1sec" {
                secs.iter()
                    .map(|(t, v)| json!({"time": label(*t), "value": v}))
                    .collect()
            } else {
                let mut per_minute: std::collections::BTreeMap<i64, (i64, i64)> =
                    Default::default();
                for (t, v) in &secs {
                    let e = per_minute.entry(t.div_euclid(60)).or_default();
                    e.0 += v;
                    e.1 += 1;
                }
                per_minute
                    .into_iter()
                    .map(|(m, (sum, n))| json!({"time": label(m * 60), "value": sum / n}))
                    .collect()
            };
            let (interval_type, summary) = (
                if level == "1sec" { "second" } else { "minute" },
                heart_summary(c, d),
            );
            Ok(
                json!({"activities-heart": summary.into_iter().collect::<Vec<_>>(),
                      "activities-heart-intraday": {"dataset": dataset, "datasetInterval": 1, "datasetType": interval_type}}),
            )
        }
        ("steps" | "calories" | "distance" | "floors", "1min") => {
            let mut total = 0.0;
            let dataset: Vec<Value> = minutes
                .map(|m| {
                    let steps = steps_at(c, m);
                    let (value, extra) = match res {
                        "steps" => (json!(steps), None),
                        "calories" => {
                            let kcal = 1.2 + steps as f64 * 0.05;
                            let level = if steps > 100 {
                                3
                            } else if steps > 0 {
                                1
                            } else {
                                0
                            };
                            (json!(kcal), Some((level, if steps > 0 { 35 } else { 12 })))
                        }
                        "distance" => {
                            let km = steps as f64 * 0.000_75;
                            (json!(if c.imperial { km / 1.609_344 } else { km }), None)
                        }
                        _ => (json!(i64::from(steps > 100 && m % 3 == 0)), None),
                    };
                    total += value.as_f64().unwrap_or(0.0);
                    let mut item = json!({"time": label(m * 60), "value": value});
                    if let Some((level, mets)) = extra {
                        item["level"] = json!(level);
                        item["mets"] = json!(mets);
                    }
                    item
                })
                .collect();
            Ok(json!({
                format!("activities-{res}"): [{"dateTime": date, "value": format!("{total}")}],
                format!("activities-{res}-intraday"): {"dataset": dataset, "datasetInterval": 1, "datasetType": "minute"},
            }))
        }
        ("active-zone-minutes", "1min") => {
            let active: Vec<(i64, i64)> = minutes
                .filter_map(|m| {
                    let steps = steps_at(c, m);
                    (steps > 80).then_some((m, if steps > 100 { 2 } else { 1 }))
                })
                .collect();
            let body = match c.user.azm_shape {
                AzmShape::Minutes => {
                    let minutes: Vec<Value> = active
                        .iter()
                        .map(|(m, v)| {
                            let t = Utc.timestamp_opt(m * 60, 0).unwrap();
                            let t = if c.utc {
                                t.naive_utc()
                            } else {
                                t.with_timezone(&tz).naive_local()
                            };
                            let zone = if *v == 2 {
                                "cardioActiveZoneMinutes"
                            } else {
                                "fatBurnActiveZoneMinutes"
                            };
                            json!({"minute": t.format("%Y-%m-%dT%H:%M:%S").to_string(),
                               "value": {"activeZoneMinutes": v, zone: v}})
                        })
                        .collect();
                    json!([{"dateTime": date, "minutes": minutes}])
                }
                AzmShape::Dataset => {
                    let dataset: Vec<Value> = active
                        .iter()
                        .map(|(m, v)| json!({"time": label(m * 60), "value": v}))
                        .collect();
                    json!({"dataset": dataset, "datasetInterval": 1, "datasetType": "minute"})
                }
            };
            Ok(json!({"activities-active-zone-minutes-intraday": body}))
        }
        _ => Err(bad(
            "validation",
            "detail-level",
            &format!("Invalid detail level {level} for {res}"),
        )),
    }
}
