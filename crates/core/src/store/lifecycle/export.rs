//! One participant's whole record as a zip archive (data portability, subject access): every
//! metric's raw samples as CSV (one file per metric, UTC and local time), the imputed values
//! with their method, the adherence days, the participant record without tokens (JSON), and
//! `manifest.json` describing each file with its unit, row count and SHA-256.
//!
//! Memory stays bounded however long the history: an async task streams rows from the series
//! reader's cursor and hands them in chunks through a small bounded channel to a blocking
//! thread that compresses them into a streaming zip writer, whose output goes through another
//! small bounded channel to the consumer (an HTTP body, a file). A consumer that stops reading
//! stops the writer, which stops the reader.

use std::collections::BTreeMap;
use std::io::{self, Write};

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use futures::{Stream, StreamExt as _};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;
use tokio::sync::mpsc;
use zip::write::SimpleFileOptions;

use crate::metric::Metric;
use crate::participant::ParticipantId;
use crate::resolution::Resolution;
use crate::store::participants::{self, Participant};
use crate::store::series::{Page, Plan, SeriesQuery};
use crate::time::TimeRange;

/// Bytes of CSV gathered before they go to the zip writer, and of zip output before it goes
/// to the consumer.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks buffered on each side of the zip writer.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The archive's file describing the others.
pub const MANIFEST: &str = "manifest.json";

/// One file of the archive as the manifest describes it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub description: String,
    /// The unit of the values (raw samples); for files with several metrics, by metric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<serde_json::Value>,
    /// Data rows (CSV header excluded; 1 for a JSON record).
    pub rows: u64,
    pub bytes: u64,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format: String,
    pub participant_id: String,
    pub study_id: String,
    /// IANA time zone of the `timestamp_local` columns.
    pub timezone: String,
    pub generated_at: DateTime<Utc>,
    pub files: Vec<FileEntry>,
}

/// What the reading side hands to the zip writer.
enum Event {
    Begin {
        name: String,
        description: String,
        unit: Option<serde_json::Value>,
    },
    Data {
        bytes: Vec<u8>,
        rows: u64,
    },
    End,
    Finish(Box<Manifest>),
    Fail(String),
}

/// Streams the participant's archive. Check that the participant exists and may be read
/// before calling: a failure once streaming has started ends the stream with an error (the
/// consumer then holds a truncated archive, never a complete-looking one).
pub fn archive(pool: PgPool, id: ParticipantId) -> impl Stream<Item = io::Result<Bytes>> {
    let (events, events_rx) = mpsc::channel::<Event>(CHUNKS_IN_FLIGHT);
    let (out, out_rx) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    tokio::spawn(async move {
        if let Err(e) = read(&pool, &id, &events).await {
            tracing::error!(participant = %id, error = %e, "participant export failed");
            let _ = events.send(Event::Fail(e.to_string())).await;
        }
    });
    tokio::task::spawn_blocking(move || {
        let failed = write_zip(events_rx, &out);
        if let Err(e) = failed {
            // A consumer that went away is not a failure; anything else ends the stream
            // with an error.
            if e.kind() != io::ErrorKind::BrokenPipe {
                let _ = out.blocking_send(Err(e));
            }
        }
    });
    futures::stream::unfold(out_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Reading failed; the consumer must not mistake what it got for a whole archive.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Store(#[from] crate::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Csv(#[from] csv::Error),
    /// The zip writer stopped (its consumer went away or it failed).
    #[error("the archive writer stopped")]
    Stopped,
}

async fn send(events: &mpsc::Sender<Event>, e: Event) -> Result<(), ReadError> {
    events.send(e).await.map_err(|_| ReadError::Stopped)
}

/// A CSV file written in chunks to the zip writer.
struct CsvFile<'a> {
    events: &'a mpsc::Sender<Event>,
    out: csv::Writer<Vec<u8>>,
    rows: u64,
}

impl<'a> CsvFile<'a> {
    async fn begin(
        events: &'a mpsc::Sender<Event>,
        name: String,
        description: String,
        unit: Option<serde_json::Value>,
        header: &[&str],
    ) -> Result<Self, ReadError> {
        send(
            events,
            Event::Begin {
                name,
                description,
                unit,
            },
        )
        .await?;
        let mut out = writer();
        out.write_record(header)?;
        Ok(CsvFile {
            events,
            out,
            rows: 0,
        })
    }

    async fn row(&mut self, fields: &[&str]) -> Result<(), ReadError> {
        self.out.write_record(fields)?;
        self.rows += 1;
        if self.out.get_ref().len() >= CHUNK_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ReadError> {
        let full = std::mem::replace(&mut self.out, writer());
        let bytes = full
            .into_inner()
            .map_err(|e| csv::Error::from(e.into_error()))?;
        let rows = std::mem::take(&mut self.rows);
        send(self.events, Event::Data { bytes, rows }).await
    }

    async fn end(mut self) -> Result<(), ReadError> {
        self.flush().await?;
        send(self.events, Event::End).await
    }
}

fn writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::with_capacity(CHUNK_BYTES + 1024))
}

fn utc(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn local(t: &DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn number(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

#[derive(sqlx::FromRow)]
struct ImputedRow {
    data_type: String,
    timestamp: DateTime<Utc>,
    value_numeric: Option<f64>,
    value_text: Option<String>,
    is_imputed: bool,
    method: String,
    job_id: uuid::Uuid,
}

#[derive(sqlx::FromRow)]
struct AdherenceRow {
    day: Option<chrono::NaiveDate>,
    wear_minutes: Option<i32>,
    valid_day: Option<bool>,
    steps: Option<f64>,
    main_sleep_type: Option<String>,
    main_sleep_start: Option<DateTime<Utc>>,
    main_sleep_end: Option<DateTime<Utc>>,
    sleep_minutes: Option<i32>,
    sleep_hr_coverage: Option<f64>,
}

/// The participant record as exported: everything but the grant (which lives elsewhere and
/// is never exported).
fn record_json(p: &Participant) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec_pretty(p)
}

async fn read(
    pool: &PgPool,
    id: &ParticipantId,
    events: &mpsc::Sender<Event>,
) -> Result<(), ReadError> {
    let mut conn = pool.acquire().await?;
    let p = participants::get(&mut conn, id).await?;
    let tz: Tz = p.timezone.parse().unwrap_or(Tz::UTC);

    send(
        events,
        Event::Begin {
            name: "participant.json".into(),
            description: "the participant record: enrolment, status, provider, contact details"
                .into(),
            unit: None,
        },
    )
    .await?;
    let bytes = record_json(&p).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    send(events, Event::Data { bytes, rows: 1 }).await?;
    send(events, Event::End).await?;

    for metric in Metric::ALL {
        let span = sqlx::query!(
            r#"select min(timestamp) as "from", max(timestamp) as "to"
               from raw_data where participant_id = $1 and data_type = $2"#,
            id.as_str(),
            metric.name()
        )
        .fetch_one(&mut *conn)
        .await?;
        let (Some(from), Some(to)) = (span.from, span.to) else {
            continue;
        };
        let info = metric.info();
        let plan = Plan::new(SeriesQuery {
            participants: vec![id.clone()],
            metric,
            range: TimeRange::new(from, to + chrono::Duration::microseconds(1))?,
            max_points: None,
            resolution: Some(Resolution::Raw),
            page: Page::default(),
        })?;
        let mut file = CsvFile::begin(
            events,
            format!("raw/{}.csv", info.name),
            format!("{}: every raw sample ({})", info.name, info.description),
            Some(serde_json::Value::String(info.unit.into())),
            &["timestamp_utc", "timestamp_local", "value", "text"],
        )
        .await?;
        let sql = plan.rows_sql();
        let mut rows = plan.stream_rows(&sql, &mut conn);
        while let Some(point) = rows.next().await {
            let point = point?;
            file.row(&[
                &utc(&point.timestamp),
                &local(&point.timestamp, tz),
                &number(point.value),
                point.text.as_deref().unwrap_or(""),
            ])
            .await?;
        }
        drop(rows);
        file.end().await?;
    }

    let units: BTreeMap<&str, &str> = Metric::ALL
        .iter()
        .map(|m| (m.name(), m.info().unit))
        .collect();
    let mut file = CsvFile::begin(
        events,
        "imputed.csv".into(),
        "imputed series: observed points (is_imputed false) and filled ones (true), with the \
         method and the imputation job"
            .into(),
        Some(serde_json::json!(units)),
        &[
            "metric",
            "timestamp_utc",
            "timestamp_local",
            "value",
            "text",
            "is_imputed",
            "method",
            "job_id",
        ],
    )
    .await?;
    let mut rows = sqlx::query_as!(
        ImputedRow,
        "select data_type, timestamp, value_numeric, value_text, is_imputed, method, job_id
         from imputed_data where participant_id = $1
         order by data_type, job_id, timestamp",
        id.as_str()
    )
    .fetch(&mut *conn);
    while let Some(r) = rows.next().await {
        let r = r?;
        file.row(&[
            &r.data_type,
            &utc(&r.timestamp),
            &local(&r.timestamp, tz),
            &number(r.value_numeric),
            r.value_text.as_deref().unwrap_or(""),
            if r.is_imputed { "true" } else { "false" },
            &r.method,
            &r.job_id.to_string(),
        ])
        .await?;
    }
    drop(rows);
    file.end().await?;

    let mut file = CsvFile::begin(
        events,
        "adherence_daily.csv".into(),
        "daily summaries per local day: wear time, steps, the main sleep and its heart-rate \
         coverage"
            .into(),
        Some(serde_json::json!({
            "wear_minutes": "minutes", "steps": "steps", "sleep_minutes": "minutes",
            "sleep_hr_coverage": "share (0 to 1)"
        })),
        &[
            "day",
            "wear_minutes",
            "valid_day",
            "steps",
            "main_sleep_type",
            "main_sleep_start_utc",
            "main_sleep_end_utc",
            "sleep_minutes",
            "sleep_hr_coverage",
        ],
    )
    .await?;
    let mut rows = sqlx::query_as!(
        AdherenceRow,
        "select day, wear_minutes, valid_day, steps, main_sleep_type, main_sleep_start,
                main_sleep_end, sleep_minutes, sleep_hr_coverage
         from participant_adherence_daily where participant_id = $1 order by day",
        id.as_str()
    )
    .fetch(&mut *conn);
    while let Some(r) = rows.next().await {
        let r = r?;
        file.row(&[
            &r.day.map(|d| d.to_string()).unwrap_or_default(),
            &r.wear_minutes.map(|m| m.to_string()).unwrap_or_default(),
            &r.valid_day.map(|v| v.to_string()).unwrap_or_default(),
            &number(r.steps),
            r.main_sleep_type.as_deref().unwrap_or(""),
            &r.main_sleep_start.as_ref().map(utc).unwrap_or_default(),
            &r.main_sleep_end.as_ref().map(utc).unwrap_or_default(),
            &r.sleep_minutes.map(|m| m.to_string()).unwrap_or_default(),
            &number(r.sleep_hr_coverage),
        ])
        .await?;
    }
    drop(rows);
    file.end().await?;

    send(
        events,
        Event::Finish(Box::new(Manifest {
            format: "wearhouse participant archive 1".into(),
            participant_id: p.participant_id,
            study_id: p.study_id,
            timezone: tz.name().into(),
            generated_at: Utc::now(),
            files: Vec::new(),
        })),
    )
    .await
}

/// Zip output in chunks to the consumer; a consumer that went away is a broken pipe.
struct ChunkWriter<'a> {
    out: &'a mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChunkWriter<'_> {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES + 1024),
        ));
        self.out
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

impl Write for ChunkWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The file being written and what the manifest will say of it.
struct Open {
    entry: FileEntry,
    hash: Sha256,
}

fn write_zip(
    mut events: mpsc::Receiver<Event>,
    out: &mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<()> {
    let mut zip = zip::ZipWriter::new_stream(ChunkWriter {
        out,
        buf: Vec::with_capacity(CHUNK_BYTES + 1024),
    });
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut files = Vec::new();
    let mut open: Option<Open> = None;
    while let Some(event) = events.blocking_recv() {
        match event {
            Event::Begin {
                name,
                description,
                unit,
            } => {
                zip.start_file(name.as_str(), options)
                    .map_err(io::Error::other)?;
                open = Some(Open {
                    entry: FileEntry {
                        name,
                        description,
                        unit,
                        rows: 0,
                        bytes: 0,
                        sha256: String::new(),
                    },
                    hash: Sha256::new(),
                });
            }
            Event::Data { bytes, rows } => {
                let Some(o) = open.as_mut() else {
                    return Err(io::Error::other("data outside a file"));
                };
                zip.write_all(&bytes)?;
                o.hash.update(&bytes);
                o.entry.rows += rows;
                o.entry.bytes += bytes.len() as u64;
            }
            Event::End => {
                let Some(Open { mut entry, hash }) = open.take() else {
                    return Err(io::Error::other("end outside a file"));
                };
                entry.sha256 = hex::encode(hash.finalize());
                files.push(entry);
            }
            Event::Finish(mut manifest) => {
                manifest.files = std::mem::take(&mut files);
                zip.start_file(MANIFEST, options)
                    .map_err(io::Error::other)?;
                let json = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
                zip.write_all(&json)?;
                let mut inner = zip.finish().map_err(io::Error::other)?.into_inner();
                return inner.flush();
            }
            Event::Fail(message) => return Err(io::Error::other(message)),
        }
    }
    Err(io::Error::other(
        "the export stopped before the archive was complete",
    ))
}
