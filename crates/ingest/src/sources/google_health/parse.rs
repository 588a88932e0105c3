//! Google Health data points to samples. Instants are read as RFC 3339 with whatever offset
//! they carry and stored in UTC (the `utcOffset` fields only say what the user's clock showed);
//! int64 fields arrive as JSON strings and doubles as numbers, and proto3 leaves out zero
//! fields, so a missing count is 0. Daily types carry a civil `date` in the user's zone, stored
//! at the participant's local midnight, as the Fitbit source does, so both sources write the
//! same key for the same day.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use wearhouse_core::{Metric, ParticipantId, Sample};

use crate::sources::fitbit::localtime::day_start;
use crate::sources::sleep_stages::{self, Segment};

/// A point we could not read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn err(what: &str, point: &Value) -> ParseError {
    // The first 160 characters (not bytes: the point may hold any text).
    let text: String = point.to_string().chars().take(160).collect();
    ParseError(format!("{what} in {text}"))
}

/// An RFC 3339 instant, in UTC.
pub fn instant(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// An int64 field: a JSON string (as Google sends it) or a number; absent means 0.
pub fn int64(v: &Value) -> Option<f64> {
    match v {
        Value::Null => Some(0.0),
        Value::String(s) => s.parse::<i64>().ok().map(|n| n as f64),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// A double field; absent means 0.
fn double(v: &Value) -> Option<f64> {
    match v {
        Value::Null => Some(0.0),
        // Lenient: one fixture sends "NaN" as a string.
        Value::String(s) => s.parse().ok(),
        other => other.as_f64(),
    }
}

fn date(v: &Value) -> Option<NaiveDate> {
    let part = |k: &str| v.get(k)?.as_u64();
    NaiveDate::from_ymd_opt(
        part("year")? as i32,
        part("month")? as u32,
        part("day")? as u32,
    )
}

/// The samples of one list page of `metric` (`key` is the JSON key of the data type).
pub fn points(
    participant: &ParticipantId,
    tz: Tz,
    metric: Metric,
    key: &str,
    page: &Value,
) -> Result<Vec<Sample>, ParseError> {
    let mut out = Vec::new();
    let Some(points) = page.get("dataPoints") else {
        return Ok(out); // `{}`: an empty page
    };
    for point in points
        .as_array()
        .ok_or_else(|| err("dataPoints is not a list", page))?
    {
        let body = &point[key];
        if body.is_null() {
            return Err(err(&format!("no {key} member"), point));
        }
        let numeric = |t: DateTime<Utc>, v: f64| Sample::numeric(participant.clone(), metric, t, v);
        match metric {
            Metric::HeartRate | Metric::Spo2 => {
                let t = instant(&body["sampleTime"]["physicalTime"])
                    .ok_or_else(|| err("no sampleTime.physicalTime", point))?;
                let v = if metric == Metric::HeartRate {
                    int64(&body["beatsPerMinute"])
                } else {
                    double(&body["percentage"])
                }
                .ok_or_else(|| err("unreadable value", point))?;
                out.push(numeric(t, v));
            }
            Metric::Steps | Metric::Distance | Metric::ActiveZoneMinutes => {
                let t = instant(&body["interval"]["startTime"])
                    .ok_or_else(|| err("no interval.startTime", point))?;
                let v = match metric {
                    Metric::Steps => int64(&body["count"]),
                    Metric::Distance => int64(&body["millimeters"]).map(|mm| mm / 1000.0),
                    _ => int64(&body["activeZoneMinutes"]),
                }
                .ok_or_else(|| err("unreadable value", point))?;
                out.push(numeric(t, v));
            }
            Metric::RestingHeartRate | Metric::HrvRmssd | Metric::BreathingRate => {
                let d = date(&body["date"]).ok_or_else(|| err("no date", point))?;
                let v = match metric {
                    Metric::RestingHeartRate => int64(&body["beatsPerMinute"]),
                    Metric::HrvRmssd => double(&body["averageHeartRateVariabilityMilliseconds"]),
                    _ => double(&body["breathsPerMinute"]),
                }
                .ok_or_else(|| err("unreadable value", point))?;
                // A left-out (zero) or NaN daily value means "not computed", not zero.
                if v > 0.0 && v.is_finite() {
                    out.push(numeric(day_start(tz, d), v));
                }
            }
            Metric::SleepStage => out.extend(sleep(participant, point, body)?),
            other => return Err(ParseError(format!("{other} is not read from a list"))),
        }
    }
    Ok(out)
}

/// Sleep stage label as stored (the catalogue's Fitbit-compatible names).
fn stage_label(session_type: &str, stage: &str) -> Option<&'static str> {
    Some(match (session_type, stage) {
        ("CLASSIC", "ASLEEP") => "asleep",
        ("CLASSIC", "RESTLESS") => "restless",
        ("CLASSIC", "AWAKE") => "awake",
        (_, "AWAKE") => "wake",
        (_, "LIGHT") => "light",
        (_, "DEEP") => "deep",
        (_, "REM") => "rem",
        _ => return None,
    })
}

/// A sleep session as one `sleep_stage` sample every 30 s, labelled with its stage, with the
/// session's `shortAwakenings` applied over the stages as Fitbit's `shortData` is (see
/// [`sleep_stages`]), so a night reads the same from either provider.
fn sleep(
    participant: &ParticipantId,
    point: &Value,
    body: &Value,
) -> Result<Vec<Sample>, ParseError> {
    let session_type = body["type"].as_str().unwrap_or("STAGES");
    let span = |item: &Value, what: &str| -> Result<(DateTime<Utc>, i64), ParseError> {
        match (instant(&item["startTime"]), instant(&item["endTime"])) {
            (Some(start), Some(end)) => {
                let seconds = (end - start).num_seconds();
                sleep_stages::check_length(seconds).map_err(|e| err(&e, point))?;
                Ok((start, seconds))
            }
            _ => Err(err(&format!("{what} without startTime/endTime"), point)),
        }
    };
    let mut stages = Vec::new();
    for stage in body["stages"].as_array().into_iter().flatten() {
        let (start, seconds) = span(stage, "a stage")?;
        let kind = stage["type"].as_str().unwrap_or("");
        let Some(label) = stage_label(session_type, kind) else {
            tracing::debug!(kind, "sleep stage type without a catalogue label; skipped");
            continue;
        };
        stages.push(Segment {
            start,
            seconds,
            label: label.into(),
        });
    }
    let wake = stage_label(session_type, "AWAKE").expect("AWAKE has a label");
    let mut short_wakes = Vec::new();
    for item in body["shortAwakenings"].as_array().into_iter().flatten() {
        let (start, seconds) = span(item, "a short awakening")?;
        short_wakes.push(Segment {
            start,
            seconds,
            label: wake.into(),
        });
    }
    Ok(sleep_stages::samples(participant, &stages, &short_wakes))
}

/// The samples of one `total-calories` rollUp page: kcal per window, at the window start.
pub fn calories(participant: &ParticipantId, page: &Value) -> Result<Vec<Sample>, ParseError> {
    let mut out = Vec::new();
    for bucket in page["rollupDataPoints"].as_array().into_iter().flatten() {
        let t = instant(&bucket["startTime"]).ok_or_else(|| err("no startTime", bucket))?;
        let kcal = double(&bucket["totalCalories"]["kcalSum"])
            .ok_or_else(|| err("unreadable kcalSum", bucket))?;
        out.push(Sample::numeric(
            participant.clone(),
            Metric::Calories,
            t,
            kcal,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn int64_strings_and_left_out_zeros_are_read() {
        assert_eq!(int64(&json!("512")), Some(512.0));
        assert_eq!(int64(&Value::Null), Some(0.0));
        assert_eq!(int64(&json!("x")), None);
    }

    /// Found by fuzzing (fuzz/, google_health_responses): one stage a thousand years long
    /// became a sample every 30 s until memory ran out.
    #[test]
    fn a_sleep_stage_longer_than_a_day_is_an_error_not_a_sample_every_30_seconds() {
        let page = json!({"dataPoints": [{"sleep": {
            "interval": {"startTime": "2025-06-01T22:00:00Z", "endTime": "2025-06-02T06:00:00Z"},
            "type": "STAGES",
            "stages": [{"startTime": "1012-06-01T23:00:00Z", "endTime": "2025-06-02T08:00:00Z",
                        "type": "DEEP"}]}}]});
        let p = ParticipantId::parse("P1").unwrap();
        let e = points(&p, Tz::UTC, Metric::SleepStage, "sleep", &page).unwrap_err();
        assert!(e.0.contains("segments are at most a day"), "{e:?}");
    }

    /// Found by fuzzing: the error quoted the point's first 160 bytes, and byte 160 fell
    /// inside a two-byte character.
    #[test]
    fn an_error_quotes_a_point_with_non_ascii_text_without_panicking() {
        let point = json!({"steps": {"interval": {"startTime": format!("{}ξ", "x".repeat(124))}}});
        let e = err("no startTime", &point);
        assert!(e.0.starts_with("no startTime in {"), "{e:?}");
        assert!(e.0.chars().count() <= "no startTime in ".len() + 160);
    }

    #[test]
    fn instants_with_an_offset_are_stored_in_utc() {
        assert_eq!(
            instant(&json!("2026-10-05T08:30:02+02:00")),
            instant(&json!("2026-10-05T06:30:02Z"))
        );
    }
}
