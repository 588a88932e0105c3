//! One export file to samples. The file's kind is chosen by its name first, so a file the
//! importer does not read is never opened (nor, in an archive, decompressed). The content is
//! read as a stream: a JSON file one top-level entry at a time, a CSV file one line at a time,
//! each bounded in length; the samples, held until the file is written, are bounded in number.

use std::io::{BufReader, Read};
use std::path::Path;

use chrono::{Datelike, Duration, NaiveDateTime};
use chrono_tz::Tz;
use serde::de::{self, SeqAccess, Visitor};
use serde_json::Value;
use wearhouse_core::{Metric, ParticipantId, Sample};

use super::Skip;
use super::limits::{
    MAX_CSV_LINE_BYTES, MAX_JSON_ENTRY_BYTES, MAX_SLEEP_SEGMENT_SECONDS, bounded, bounded_to,
    some_of,
};
use super::metered::Meter;
use crate::sources::fitbit::localtime::to_utc;

/// What an understood file holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Kind {
    HeartRate,
    /// A `{dateTime, value}` series, the value times the scale.
    Scalar(Metric, f64),
    RestingHeartRate,
    Sleep,
    HrvCsv,
}

/// The kind of the file at `path`, by its name; `Err` is why it is not read.
pub(super) fn kind(path: &Path) -> Result<Kind, String> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if name.ends_with(".json") {
        let by_prefix = [
            ("heart_rate-", Kind::HeartRate),
            ("steps-", Kind::Scalar(Metric::Steps, 1.0)),
            ("calories-", Kind::Scalar(Metric::Calories, 1.0)),
            // Centimetres in the account export.
            ("distance-", Kind::Scalar(Metric::Distance, 0.01)),
            ("resting_heart_rate-", Kind::RestingHeartRate),
            ("sleep-", Kind::Sleep),
        ];
        if let Some((_, kind)) = by_prefix.iter().find(|(p, _)| name.starts_with(p)) {
            return Ok(*kind);
        }
    }
    if name.starts_with("Daily Heart Rate Variability Summary") && name.ends_with(".csv") {
        return Ok(Kind::HrvCsv);
    }
    if name.starts_with("estimated_oxygen_variation-") {
        return Err("estimated oxygen variation is a variation index, not SpO2; the catalogue has no metric for it".into());
    }
    Err("not a file the importer understands".into())
}

/// The samples of one file of `kind`, read from `input` (metered by `meter`), at most
/// `max_samples` of them.
pub(super) fn read(
    participant: &ParticipantId,
    tz: Tz,
    kind: Kind,
    meter: &Meter,
    input: impl Read,
    max_samples: usize,
) -> Result<Vec<Sample>, Skip> {
    let mut out = Samples {
        out: Vec::new(),
        max: max_samples,
    };
    let numeric = |metric, t, v| Sample::numeric(participant.clone(), metric, t, v);
    match kind {
        Kind::HeartRate => each_entry(meter, input, |e| {
            let t = export_time(tz, &e["dateTime"])?;
            let bpm = number(&e["value"]["bpm"]).ok_or("an entry without value.bpm")?;
            out.push(numeric(Metric::HeartRate, t, bpm))
        })?,
        Kind::Scalar(metric, scale) => each_entry(meter, input, |e| {
            let t = export_time(tz, &e["dateTime"])?;
            let v = number(&e["value"]).ok_or("an entry without a numeric value")?;
            out.push(numeric(metric, t, v * scale))
        })?,
        Kind::RestingHeartRate => each_entry(meter, input, |e| {
            // Days without a computed value are written as 0.
            match number(&e["value"]["value"]) {
                Some(v) if v > 0.0 => {
                    let t = export_time(tz, &e["dateTime"])?;
                    out.push(numeric(Metric::RestingHeartRate, t, v))
                }
                _ => Ok(()),
            }
        })?,
        Kind::Sleep => each_entry(meter, input, |log| {
            sleep_log(participant, tz, log, &mut out)
        })?,
        Kind::HrvCsv => hrv_csv(participant, tz, meter, input, &mut out)?,
    }
    Ok(out.out)
}

/// A file's samples so far, refused past `max`.
struct Samples {
    out: Vec<Sample>,
    max: usize,
}

impl Samples {
    fn push(&mut self, s: Sample) -> Result<(), Skip> {
        if self.out.len() >= self.max {
            return Err(Skip::Refused(format!(
                "yields more than {} samples; not read (raise --max-entry-samples or \
                 WEARHOUSE_IMPORT_MAX_ENTRY_SAMPLES if the file is genuine)",
                self.max
            )));
        }
        self.out.push(s);
        Ok(())
    }
}

/// Calls `f` on each entry of the JSON array `input` holds, one entry in memory at a time.
fn each_entry(
    meter: &Meter,
    input: impl Read,
    mut f: impl FnMut(&Value) -> Result<(), Skip>,
) -> Result<(), Skip> {
    let mut de = serde_json::Deserializer::from_reader(BufReader::new(input));
    let mut failed = None;
    let parsed = de::Deserializer::deserialize_seq(
        &mut de,
        EachEntry {
            meter,
            f: &mut f,
            failed: &mut failed,
        },
    )
    .and_then(|()| de.end());
    if let Some(skip) = failed {
        return Err(skip);
    }
    if let Some(why) = meter.refusal() {
        return Err(Skip::Refused(why));
    }
    parsed.map_err(|e| {
        Skip::NotRead(if e.is_data() {
            "expected a JSON array of entries".into()
        } else {
            bounded(&format!("malformed JSON: {e}"))
        })
    })
}

struct EachEntry<'a, F> {
    meter: &'a Meter,
    f: &'a mut F,
    /// Why `f` stopped the parse.
    failed: &'a mut Option<Skip>,
}

impl<'de, F: FnMut(&Value) -> Result<(), Skip>> Visitor<'de> for EachEntry<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            self.meter.mark("JSON entry", MAX_JSON_ENTRY_BYTES);
            let Some(entry) = seq.next_element::<Value>()? else {
                return Ok(());
            };
            if let Err(skip) = (self.f)(&entry) {
                *self.failed = Some(skip);
                return Err(de::Error::custom("stopped"));
            }
        }
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        other => other.as_f64(),
    }
}

impl From<&str> for Skip {
    fn from(reason: &str) -> Skip {
        Skip::NotRead(reason.into())
    }
}

impl From<String> for Skip {
    fn from(reason: String) -> Skip {
        Skip::NotRead(reason)
    }
}

/// `MM/DD/YY HH:MM:SS` (or ISO `yyyy-MM-ddTHH:mm:ss[.SSS]`) in `tz`, to UTC. Years outside
/// 1970–9999 are refused: none are in an export, and near chrono's range arithmetic on them
/// would overflow.
fn export_time(tz: Tz, v: &Value) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let s = v.as_str().ok_or("an entry without dateTime")?;
    let naive = NaiveDateTime::parse_from_str(s, "%m/%d/%y %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
        .ok()
        .filter(|t| (1970..=9999).contains(&t.year()))
        .ok_or_else(|| format!("unreadable dateTime {:?}", bounded_to(s, 40)))?;
    Ok(to_utc(tz, naive, None))
}

/// One sleep log in the v1.2 shape: each `levels.data` segment as one sample per 30 s.
fn sleep_log(
    participant: &ParticipantId,
    tz: Tz,
    log: &Value,
    out: &mut Samples,
) -> Result<(), Skip> {
    let data = log["levels"]["data"]
        .as_array()
        .ok_or("a sleep log without levels.data")?;
    for seg in data {
        let start = export_time(tz, &seg["dateTime"])?;
        let seconds = seg["seconds"]
            .as_i64()
            .ok_or("a sleep segment without seconds")?;
        if !(0..=MAX_SLEEP_SEGMENT_SECONDS).contains(&seconds) {
            return Err(Skip::NotRead(format!(
                "a sleep segment of {seconds} seconds; segments are at most a day"
            )));
        }
        let level = seg["level"]
            .as_str()
            .ok_or("a sleep segment without level")?;
        let level = bounded_to(level, 40);
        let end = start + Duration::seconds(seconds);
        let mut t = start;
        while t < end {
            out.push(Sample::sleep_stage(participant.clone(), t, &level))?;
            t += Duration::seconds(30);
        }
    }
    Ok(())
}

/// `timestamp,rmssd,nremhr,entropy` rows, one line in memory at a time.
fn hrv_csv(
    participant: &ParticipantId,
    tz: Tz,
    meter: &Meter,
    input: impl Read,
    out: &mut Samples,
) -> Result<(), Skip> {
    let mut rows = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let unreadable = |e: csv::Error| match (meter.refusal(), e.kind()) {
        (Some(why), _) => Skip::Refused(why),
        (None, csv::ErrorKind::Utf8 { .. }) => Skip::NotRead("not UTF-8 text".to_owned()),
        (None, _) => Skip::NotRead(bounded(&e.to_string())),
    };
    meter.mark("CSV line", MAX_CSV_LINE_BYTES);
    let header = rows.headers().map_err(unreadable)?.clone();
    let col = |name: &str| header.iter().position(|h| h == name);
    let (Some(ts), Some(rmssd)) = (col("timestamp"), col("rmssd")) else {
        return Err(Skip::NotRead(format!(
            "expected timestamp and rmssd columns, found {}",
            some_of(&header.iter().collect::<Vec<_>>())
        )));
    };
    let mut row = csv::StringRecord::new();
    loop {
        meter.mark("CSV line", MAX_CSV_LINE_BYTES);
        if !rows.read_record(&mut row).map_err(unreadable)? {
            return Ok(());
        }
        if row.len() == 1 && row[0].is_empty() {
            continue;
        }
        let t = export_time(tz, &Value::from(row.get(ts).unwrap_or("")))?;
        let cell = row.get(rmssd).unwrap_or("");
        let v: f64 = cell.parse().map_err(|_| {
            let line = row.position().map_or(0, csv::Position::line);
            format!("unreadable rmssd {:?} on line {line}", bounded_to(cell, 40))
        })?;
        out.push(Sample::numeric(participant.clone(), Metric::HrvRmssd, t, v))?;
    }
}

#[cfg(test)]
mod tests;
