//! One participant's data over a range of their local days in standard formats: a FHIR R4
//! `Bundle` of `Observation`s ([`fhir`]) and Open mHealth data points ([`omh`]), as a JSON
//! array or as NDJSON. The HTTP routes (`routes::exports`) and `wearhouse-api export` both
//! write through [`stream`]. What each format holds, with its codes and units, is in
//! docs/exports.md.
//!
//! Memory stays bounded whatever the range: a task reads each part from a server-side cursor
//! (`store::observations`), writes each resource as it comes into a buffer, and hands the
//! buffer in chunks through a small bounded channel to the consumer; a consumer that stops
//! reading stops the reader. A failure once streaming has started ends the stream with an
//! error, so the consumer holds a truncated document (invalid JSON), never a complete-looking
//! one.

pub mod cli;
pub mod fhir;
pub mod omh;

use std::io;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use futures::{Stream, StreamExt as _};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::mpsc;
use wearhouse_core::store::observations::{
    self, DailyAggregate, DailyRow, LocalDays, SampleRow, SleepEpisode,
};
use wearhouse_core::{Metric, ParticipantId};

/// Bytes gathered before a chunk is handed to the consumer.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks buffered between the database and a slow consumer.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The document to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A FHIR R4 `Bundle` of type `collection` (`application/fhir+json`).
    Fhir,
    /// Open mHealth data points as one JSON array.
    OmhJson,
    /// Open mHealth data points, one JSON object per line.
    OmhNdjson,
}

impl Format {
    /// The media type of the document.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Fhir => "application/fhir+json",
            Format::OmhJson => "application/json",
            Format::OmhNdjson => "application/x-ndjson",
        }
    }

    /// The format's name in the audit trail and file names.
    pub fn name(self) -> &'static str {
        match self {
            Format::Fhir => "fhir",
            Format::OmhJson => "omh",
            Format::OmhNdjson => "omh-ndjson",
        }
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::OmhNdjson => "ndjson",
            _ => "json",
        }
    }
}

/// Whose data, over which local days.
#[derive(Debug, Clone)]
pub struct Subject {
    pub participant_id: ParticipantId,
    /// The provider the data came from (`fitbit`, `google-health`, `synthetic`), if known.
    pub provider: Option<String>,
    pub days: LocalDays,
}

impl Subject {
    /// `t` in the participant's zone, with its offset (`2025-06-01T08:00:00+01:00`).
    pub fn local(&self, t: &DateTime<Utc>) -> String {
        local(t, self.days.tz)
    }

    /// Where the data came from, for people.
    pub fn source(&self) -> &str {
        self.provider.as_deref().unwrap_or("wearable device")
    }
}

fn local(t: &DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// A JSON number for `v`: whole values (step totals) as integers.
pub fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        Value::from(v)
    }
}

/// One thing read for the export.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    /// A stored sample of a metric.
    Sample(Metric, &'a SampleRow),
    /// One local day's value of a metric.
    Daily(Metric, &'a DailyRow),
    /// A sleep episode derived from the sleep stages.
    Sleep(&'a SleepEpisode),
}

/// The parts of an export, in the order they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Samples(Metric),
    Daily(Metric, DailyAggregate),
    Sleep,
}

/// Every part either format may write; each format says which it writes ([`fhir::PARTS`],
/// [`omh::PARTS`]).
pub const ALL_PARTS: [Part; 7] = [
    Part::Samples(Metric::HeartRate),
    Part::Samples(Metric::Spo2),
    Part::Daily(Metric::Steps, DailyAggregate::Sum),
    Part::Daily(Metric::Distance, DailyAggregate::Sum),
    Part::Daily(Metric::RestingHeartRate, DailyAggregate::Mean),
    Part::Daily(Metric::BreathingRate, DailyAggregate::Mean),
    Part::Sleep,
];

/// Streams the export. Check that the caller may read the participant, and record the read,
/// before calling.
pub fn stream(
    pool: PgPool,
    subject: Subject,
    format: Format,
) -> impl Stream<Item = io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    tokio::spawn(async move {
        let mut out = Writer::new(&tx, format, &subject);
        match write(&pool, &subject, &mut out).await {
            Ok(()) => {}
            Err(WriteError::Stopped) => {}
            Err(e) => {
                tracing::error!(
                    participant = %subject.participant_id,
                    format = format.name(),
                    written = out.items,
                    error = %e,
                    "export failed"
                );
                let _ = tx.send(Err(io::Error::other("export failed"))).await;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Writing stopped.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(transparent)]
    Store(#[from] wearhouse_core::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The consumer went away.
    #[error("the consumer stopped reading")]
    Stopped,
}

async fn write(pool: &PgPool, s: &Subject, out: &mut Writer<'_>) -> Result<(), WriteError> {
    let mut conn = pool.acquire().await.map_err(wearhouse_core::Error::from)?;
    let parts = match out.format {
        Format::Fhir => fhir::PARTS,
        Format::OmhJson | Format::OmhNdjson => omh::PARTS,
    };
    out.begin().await?;
    for part in ALL_PARTS.into_iter().filter(|p| parts.contains(p)) {
        match part {
            Part::Samples(metric) => {
                let mut rows = observations::samples(&mut conn, &s.participant_id, metric, &s.days);
                while let Some(row) = rows.next().await {
                    out.item(Item::Sample(metric, &row?)).await?;
                }
            }
            Part::Daily(metric, aggregate) => {
                let mut rows =
                    observations::daily(&mut conn, &s.participant_id, metric, aggregate, &s.days);
                while let Some(row) = rows.next().await {
                    out.item(Item::Daily(metric, &row?)).await?;
                }
            }
            Part::Sleep => {
                let mut rows = observations::sleep_episodes(&mut conn, &s.participant_id, &s.days);
                while let Some(row) = rows.next().await {
                    out.item(Item::Sleep(&row?)).await?;
                }
            }
        }
    }
    out.finish().await
}

/// The document being written, in chunks to the consumer.
struct Writer<'a> {
    tx: &'a mpsc::Sender<io::Result<Bytes>>,
    format: Format,
    subject: &'a Subject,
    /// When the export was made (FHIR `Bundle.timestamp`, OMH `creation_date_time`).
    created: String,
    buf: Vec<u8>,
    items: u64,
}

impl<'a> Writer<'a> {
    fn new(tx: &'a mpsc::Sender<io::Result<Bytes>>, format: Format, subject: &'a Subject) -> Self {
        Writer {
            tx,
            format,
            subject,
            created: local(&Utc::now(), subject.days.tz),
            buf: Vec::with_capacity(CHUNK_BYTES + 4096),
            items: 0,
        }
    }

    async fn begin(&mut self) -> Result<(), WriteError> {
        match self.format {
            Format::Fhir => fhir::begin(&mut self.buf, &self.created)?,
            Format::OmhJson => self.buf.push(b'['),
            Format::OmhNdjson => {}
        }
        Ok(())
    }

    async fn item(&mut self, item: Item<'_>) -> Result<(), WriteError> {
        let value = match self.format {
            Format::Fhir => fhir::entry(self.subject, item),
            Format::OmhJson | Format::OmhNdjson => {
                omh::data_point(self.subject, &self.created, item)
            }
        };
        let Some(value) = value else {
            return Ok(());
        };
        match self.format {
            Format::Fhir => {
                // FHIR's JSON has no empty arrays: `entry` opens with its first resource.
                self.buf.extend_from_slice(if self.items == 0 {
                    b",\"entry\":["
                } else {
                    b","
                });
                serde_json::to_writer(&mut self.buf, &value)?;
            }
            Format::OmhJson => {
                if self.items > 0 {
                    self.buf.push(b',');
                }
                serde_json::to_writer(&mut self.buf, &value)?;
            }
            Format::OmhNdjson => {
                serde_json::to_writer(&mut self.buf, &value)?;
                self.buf.push(b'\n');
            }
        }
        self.items += 1;
        if self.buf.len() >= CHUNK_BYTES {
            self.send().await?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), WriteError> {
        match self.format {
            Format::Fhir => self
                .buf
                .extend_from_slice(if self.items == 0 { b"}" } else { b"]}" }),
            Format::OmhJson => self.buf.push(b']'),
            Format::OmhNdjson => {}
        }
        self.send().await
    }

    async fn send(&mut self) -> Result<(), WriteError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES + 4096));
        self.tx
            .send(Ok(Bytes::from(chunk)))
            .await
            .map_err(|_| WriteError::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_are_written_as_integers_and_others_as_they_are() {
        assert_eq!(number(1234.0).to_string(), "1234");
        assert_eq!(number(61.5).to_string(), "61.5");
        assert_eq!(number(-0.25).to_string(), "-0.25");
    }

    #[test]
    fn local_times_carry_the_participants_offset() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let t: DateTime<Utc> = "2025-06-01T12:00:30Z".parse().unwrap();
        assert_eq!(local(&t, tz), "2025-06-01T08:00:30-04:00");
        assert_eq!(local(&t, Tz::UTC), "2025-06-01T12:00:30+00:00");
    }
}
