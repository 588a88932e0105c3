//! The JSON body of a `/data` answer, written by hand. It is byte for byte what serde_json
//! writes for [`DataResponse`] (a test holds the two together), but the points, which are
//! nearly all of an answer and most of its serialisation time, are written without
//! serde: keys are literal bytes instead of escaped strings, a timestamp's date part is
//! formatted once per day rather than once per point, and a number repeated in one point
//! (a raw sample is its own min, max and sum) is formatted once.

use chrono::{DateTime, Utc};
use serde::Serialize;
use wearhouse_core::store::series::Point;
use wearhouse_core::time::push_rfc3339;

use super::DataResponse;

/// About what one point takes as JSON (a rollup point with every field set).
const BYTES_PER_POINT: usize = 120;
const SECS_PER_DAY: i64 = 86_400;

/// The envelope of an answer: every field of [`DataResponse`] but the series, in its order.
#[derive(Serialize)]
struct Envelope<'a> {
    metric: &'a str,
    unit: &'a str,
    start_date: DateTime<Utc>,
    end_date: DateTime<Utc>,
    resolution: &'a str,
    resolution_reason: &'a str,
    max_points: u32,
    total_count: i64,
    limit: Option<u32>,
    offset: u64,
    next_cursor: Option<&'a str>,
}

/// `body` as JSON, into one buffer sized for its points.
pub fn to_vec(body: &DataResponse) -> serde_json::Result<Vec<u8>> {
    let points: usize = body.series.iter().map(|s| s.points.len()).sum();
    let mut buf = Vec::with_capacity(512 + points * BYTES_PER_POINT);
    serde_json::to_writer(
        &mut buf,
        &Envelope {
            metric: body.metric,
            unit: body.unit,
            start_date: body.start_date,
            end_date: body.end_date,
            resolution: body.resolution,
            resolution_reason: &body.resolution_reason,
            max_points: body.max_points,
            total_count: body.total_count,
            limit: body.limit,
            offset: body.offset,
            next_cursor: body.next_cursor.as_deref(),
        },
    )?;
    // Reopen the envelope's object to append the series.
    debug_assert_eq!(buf.last(), Some(&b'}'));
    buf.pop();
    buf.extend_from_slice(br#","series":["#);
    let mut w = PointWriter::default();
    for (i, series) in body.series.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(br#"{"participant_id":"#);
        serde_json::to_writer(&mut buf, &series.participant_id)?;
        buf.extend_from_slice(br#","points":["#);
        for (j, p) in series.points.iter().enumerate() {
            if j > 0 {
                buf.push(b',');
            }
            w.point(&mut buf, p)?;
        }
        buf.extend_from_slice(b"]}");
    }
    buf.extend_from_slice(b"]}");
    Ok(buf)
}

/// Writes points, keeping what the next point is likely to repeat.
#[derive(Default)]
struct PointWriter {
    /// The day (since the epoch) whose `YYYY-MM-DDT` prefix is in `date`.
    day: Option<i64>,
    date: String,
    /// The last number formatted, and its text.
    number: Option<u64>,
    number_text: Vec<u8>,
}

impl PointWriter {
    fn point(&mut self, buf: &mut Vec<u8>, p: &Point) -> serde_json::Result<()> {
        buf.extend_from_slice(br#"{"timestamp":""#);
        self.timestamp(buf, &p.timestamp);
        buf.extend_from_slice(br#"","value":"#);
        self.number(buf, p.value)?;
        buf.extend_from_slice(br#","min":"#);
        self.number(buf, p.min)?;
        buf.extend_from_slice(br#","max":"#);
        self.number(buf, p.max)?;
        buf.extend_from_slice(br#","sum":"#);
        self.number(buf, p.sum)?;
        buf.extend_from_slice(br#","count":"#);
        buf.extend_from_slice(itoa(p.count, &mut [0; 20]));
        buf.extend_from_slice(br#","text":"#);
        serde_json::to_writer(&mut *buf, &p.text)?;
        buf.push(b'}');
        Ok(())
    }

    /// RFC 3339 as [`push_rfc3339`] writes it; whole seconds within years 0 to 9999 reuse
    /// the date of the previous point.
    fn timestamp(&mut self, buf: &mut Vec<u8>, t: &DateTime<Utc>) {
        let secs = t.timestamp();
        let day = secs.div_euclid(SECS_PER_DAY);
        // Fractions (and leap seconds, whose nanoseconds exceed a second) and years beyond
        // four digits take the general path. Days 0000-01-01 to 9999-12-31:
        let plain = t.timestamp_subsec_nanos() == 0 && (-719_528..2_932_897).contains(&day);
        if !plain {
            let mut s = String::with_capacity(40);
            push_rfc3339(&mut s, t);
            buf.extend_from_slice(s.as_bytes());
            return;
        }
        if self.day != Some(day) {
            self.date.clear();
            push_rfc3339(&mut self.date, t);
            self.date.truncate("YYYY-MM-DDT".len());
            self.day = Some(day);
        }
        buf.extend_from_slice(self.date.as_bytes());
        let s = secs.rem_euclid(SECS_PER_DAY) as u32;
        let (h, m, s) = (s / 3_600, s / 60 % 60, s % 60);
        buf.extend_from_slice(&[
            b'0' + (h / 10) as u8,
            b'0' + (h % 10) as u8,
            b':',
            b'0' + (m / 10) as u8,
            b'0' + (m % 10) as u8,
            b':',
            b'0' + (s / 10) as u8,
            b'0' + (s % 10) as u8,
            b'Z',
        ]);
    }

    /// A number as serde_json writes it (`null` for none and for non-finite values).
    fn number(&mut self, buf: &mut Vec<u8>, v: Option<f64>) -> serde_json::Result<()> {
        let Some(v) = v else {
            buf.extend_from_slice(b"null");
            return Ok(());
        };
        if self.number != Some(v.to_bits()) {
            self.number_text.clear();
            serde_json::to_writer(&mut self.number_text, &v)?;
            self.number = Some(v.to_bits());
        }
        buf.extend_from_slice(&self.number_text);
        Ok(())
    }
}

/// `n` in decimal, in `out`.
fn itoa(n: i64, out: &mut [u8; 20]) -> &[u8] {
    let mut i = out.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        out[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        out[i] = b'-';
    }
    &out[i..]
}

#[cfg(test)]
mod tests;
