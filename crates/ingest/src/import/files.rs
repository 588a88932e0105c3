//! One export file to samples, chosen by file name; `Err` is the reason a file is not imported.

use std::path::Path;

use chrono::{Duration, NaiveDateTime};
use chrono_tz::Tz;
use serde_json::Value;
use wearhouse_core::{Metric, ParticipantId, Sample};

use crate::sources::fitbit::localtime::to_utc;

/// The samples of one file.
pub(super) fn read(
    participant: &ParticipantId,
    tz: Tz,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<Sample>, String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let json =
        || serde_json::from_slice::<Value>(bytes).map_err(|e| format!("malformed JSON: {e}"));
    let scalar = |metric, scale| -> Result<Vec<Sample>, String> {
        entries(&json()?)?
            .iter()
            .map(|e| {
                let t = export_time(tz, &e["dateTime"])?;
                let v = number(&e["value"]).ok_or("an entry without a numeric value")?;
                Ok(Sample::numeric(participant.clone(), metric, t, v * scale))
            })
            .collect()
    };
    if name.ends_with(".json") {
        if name.starts_with("heart_rate-") {
            return entries(&json()?)?
                .iter()
                .map(|e| {
                    let t = export_time(tz, &e["dateTime"])?;
                    let bpm = number(&e["value"]["bpm"]).ok_or("an entry without value.bpm")?;
                    Ok(Sample::numeric(
                        participant.clone(),
                        Metric::HeartRate,
                        t,
                        bpm,
                    ))
                })
                .collect();
        }
        if name.starts_with("steps-") {
            return scalar(Metric::Steps, 1.0);
        }
        if name.starts_with("calories-") {
            return scalar(Metric::Calories, 1.0);
        }
        if name.starts_with("distance-") {
            // Centimetres in the account export.
            return scalar(Metric::Distance, 0.01);
        }
        if name.starts_with("resting_heart_rate-") {
            return entries(&json()?)?
                .iter()
                .filter(|e| number(&e["value"]["value"]).is_some_and(|v| v > 0.0))
                .map(|e| {
                    let t = export_time(tz, &e["dateTime"])?;
                    let v = number(&e["value"]["value"]).expect("filtered");
                    Ok(Sample::numeric(
                        participant.clone(),
                        Metric::RestingHeartRate,
                        t,
                        v,
                    ))
                })
                .collect();
        }
        if name.starts_with("sleep-") {
            return sleep(participant, tz, &json()?);
        }
    }
    if name.starts_with("Daily Heart Rate Variability Summary") && name.ends_with(".csv") {
        return hrv_csv(participant, tz, bytes);
    }
    if name.starts_with("estimated_oxygen_variation-") {
        return Err("estimated oxygen variation is a variation index, not SpO2; the catalogue has no metric for it".into());
    }
    Err("not a file the importer understands".into())
}

fn entries(v: &Value) -> Result<&Vec<Value>, String> {
    v.as_array()
        .ok_or_else(|| "expected a JSON array of entries".into())
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        other => other.as_f64(),
    }
}

/// `MM/DD/YY HH:MM:SS` (or ISO `yyyy-MM-ddTHH:mm:ss[.SSS]`) in `tz`, to UTC.
fn export_time(tz: Tz, v: &Value) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let s = v.as_str().ok_or("an entry without dateTime")?;
    let naive = NaiveDateTime::parse_from_str(s, "%m/%d/%y %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
        .map_err(|_| format!("unreadable dateTime {s:?}"))?;
    Ok(to_utc(tz, naive, None))
}

/// Sleep logs in the v1.2 shape: each `levels.data` segment as one sample per 30 s.
fn sleep(participant: &ParticipantId, tz: Tz, v: &Value) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for log in entries(v)? {
        let data = log["levels"]["data"]
            .as_array()
            .ok_or("a sleep log without levels.data")?;
        for seg in data {
            let start = export_time(tz, &seg["dateTime"])?;
            let seconds = seg["seconds"]
                .as_i64()
                .ok_or("a sleep segment without seconds")?;
            let level = seg["level"]
                .as_str()
                .ok_or("a sleep segment without level")?;
            let mut t = start;
            while t < start + Duration::seconds(seconds) {
                out.push(Sample::sleep_stage(participant.clone(), t, level));
                t += Duration::seconds(30);
            }
        }
    }
    Ok(out)
}

/// `timestamp,rmssd,nremhr,entropy` rows.
fn hrv_csv(participant: &ParticipantId, tz: Tz, bytes: &[u8]) -> Result<Vec<Sample>, String> {
    let mut rows = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let unreadable = |e: csv::Error| match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_owned(),
        _ => e.to_string(),
    };
    let header = rows.headers().map_err(unreadable)?.clone();
    let col = |name: &str| header.iter().position(|h| h == name);
    let (Some(ts), Some(rmssd)) = (col("timestamp"), col("rmssd")) else {
        let found: Vec<&str> = header.iter().collect();
        return Err(format!(
            "expected timestamp and rmssd columns, found {found:?}"
        ));
    };
    let mut out = Vec::new();
    for row in rows.records() {
        let row = row.map_err(unreadable)?;
        if row.len() == 1 && row[0].is_empty() {
            continue;
        }
        let t = export_time(tz, &Value::from(row.get(ts).unwrap_or("")))?;
        let cell = row.get(rmssd).unwrap_or("");
        let v: f64 = cell.parse().map_err(|_| {
            let line = row.position().map_or(0, csv::Position::line);
            format!("unreadable rmssd {cell:?} on line {line}")
        })?;
        out.push(Sample::numeric(participant.clone(), Metric::HrvRmssd, t, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hrv_summary_is_read_by_its_header_and_a_bad_cell_names_its_line() {
        let p = ParticipantId::parse("P001").unwrap();
        let tz = chrono_tz::UTC;
        let csv = b"timestamp, rmssd ,nremhr\n2026-10-05T00:00:00,41.2,55.1\n\n";
        let samples = hrv_csv(&p, tz, csv).unwrap();
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].value_numeric, Some(41.2));
        let bad = b"timestamp,rmssd\n2026-10-05T00:00:00,41.2\n2026-10-06T00:00:00,high\n";
        assert_eq!(
            hrv_csv(&p, tz, bad).unwrap_err(),
            "unreadable rmssd \"high\" on line 3"
        );
        assert_eq!(
            hrv_csv(&p, tz, b"date,value\n").unwrap_err(),
            "expected timestamp and rmssd columns, found [\"date\", \"value\"]"
        );
    }
}
