//! The CSV export: the same rows as the JSON answer, streamed from a server-side cursor
//! (`fetch`) through a small bounded channel, so memory stays flat however long the series.
//! Parameters, participants and the database connection are checked before the first byte,
//! so those failures still get a JSON error with the right status; a failure mid-stream
//! aborts the body, which the client sees as a truncated download, never as a complete one.
//!
//! An answer without `limit` streams at most [`DataLimits::csv_max_rows`] rows. Whether it
//! fits is known before the first byte (a rollup's rows are bounded by its buckets; raw rows
//! are counted, stopping at the cap), so a larger one gets a 400 naming `end_date`. Rows that
//! arrive between that count and the stream cannot push it past the cap: it is cut there,
//! as a truncated download.

use std::fmt::Write as _;
use std::io;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt as _;
use sqlx::PgPool;
use tokio::sync::mpsc;
use wearhouse_core::store::audit;
use wearhouse_core::store::series::Point;

use super::{DataLimits, DataRequest};
use crate::auth::Caller;
use crate::error::{ApiError, error_chain};
use crate::params::QueryParams;

/// The header row's fields.
pub const HEADER: [&str; 8] = [
    "participant_id",
    "timestamp",
    "value",
    "min",
    "max",
    "sum",
    "count",
    "text",
];
/// Bytes gathered before a chunk is handed to the client.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks buffered between the database and a slow client.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Answers a CSV export. Without `limit`, every row of the routed resolution is streamed.
pub async fn export(
    pool: &PgPool,
    limits: DataLimits,
    caller: &Caller,
    params: &QueryParams,
) -> Result<Response, ApiError> {
    let request = DataRequest::parse(params, false)?;
    let mut conn = pool.acquire().await?;
    let action = audit::action::EXPORT;
    let study = request.visible(&mut conn, caller, action).await?;
    let row_limit = if request.explicit_limit {
        request.plan.page.limit.map(|l| l as usize)
    } else {
        let cap = limits.csv_max_rows;
        if request.plan.rows_within(&mut conn, cap).await?.is_none() {
            let outcome = audit::outcome::FAILED;
            request
                .record(&mut conn, caller, action, study.as_deref(), outcome)
                .await?;
            return Err(too_many_rows(&request, cap));
        }
        Some(usize::try_from(cap).unwrap_or(usize::MAX))
    };
    request
        .record(
            &mut conn,
            caller,
            action,
            study.as_deref(),
            audit::outcome::OK,
        )
        .await?;
    let plan = request.plan;
    let cut_at_cap = !request.explicit_limit;
    let filename = format!(
        "{}_{}_{}.csv",
        plan.metric.name(),
        plan.routing.resolution,
        plan.range.start.format("%Y%m%d")
    );
    let resolution = plan.routing.resolution;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_IN_FLIGHT);
    tokio::spawn(async move {
        let sql = plan.rows_sql();
        let mut rows = plan.stream_rows(&sql, &mut conn);
        let mut out = writer(Vec::with_capacity(CHUNK_BYTES + 1024));
        let mut written = 0usize;
        let mut failed = out.write_record(HEADER).err();
        while failed.is_none()
            && let Some(row) = rows.next().await
        {
            if row_limit.is_some_and(|l| written >= l) {
                if cut_at_cap {
                    tracing::warn!(rows = written, "csv export cut at WEARHOUSE_CSV_MAX_ROWS");
                    let _ = tx
                        .send(Err(std::io::Error::other("csv export exceeds its row cap")))
                        .await;
                    return;
                }
                break;
            }
            match row {
                Ok(p) => match write_row(&mut out, &p) {
                    Ok(()) => written += 1,
                    Err(e) => failed = Some(e),
                },
                Err(e) => {
                    tracing::error!(error = %error_chain(&e), rows = written, "csv export failed");
                    let _ = tx
                        .send(Err(std::io::Error::other("csv export failed")))
                        .await;
                    return;
                }
            }
            if out.get_ref().len() >= CHUNK_BYTES {
                let chunk = match take(&mut out) {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                };
                if tx.send(Ok(chunk)).await.is_err() {
                    // The client went away; dropping the cursor ends the query.
                    return;
                }
            }
        }
        let last = match failed {
            None => take(&mut out),
            Some(e) => Err(e),
        };
        match last {
            Ok(chunk) => {
                let _ = tx.send(Ok(chunk)).await;
                tracing::debug!(rows = written, %resolution, "csv export finished");
            }
            Err(e) => {
                // Writing into memory fails only on a bug; the client sees a truncated body.
                tracing::error!(error = %e, rows = written, "csv export failed");
                let _ = tx
                    .send(Err(std::io::Error::other("csv export failed")))
                    .await;
            }
        }
    });
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// The 400 for an answer over the cap: what it asked for, and the ways to ask for less.
fn too_many_rows(request: &DataRequest, cap: u64) -> ApiError {
    let plan = &request.plan;
    ApiError::invalid(
        "end_date",
        format!(
            "{} participant(s) in [{}, {}) at {} resolution hold more than {cap} rows, the \
             most one CSV answer streams (WEARHOUSE_CSV_MAX_ROWS); choose an earlier end_date, \
             fewer participants, a coarser resolution, or pages with limit and offset",
            plan.participants.len(),
            plan.range.start.to_rfc3339(),
            plan.range.end.to_rfc3339(),
            plan.routing.resolution,
        ),
    )
}

/// A CSV writer as the export writes: comma separated, `\n` after each row, fields quoted
/// only when they hold a separator, quote or line break (RFC 4180).
pub fn writer<W: io::Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out)
}

/// Everything written so far, as a chunk for the body.
fn take(out: &mut csv::Writer<Vec<u8>>) -> Result<Bytes, csv::Error> {
    let full = std::mem::replace(out, writer(Vec::with_capacity(CHUNK_BYTES + 1024)));
    let chunk = full
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(Bytes::from(chunk))
}

/// Writes one row: numbers as Rust prints them (shortest form that reads back exactly),
/// times in RFC 3339 UTC as in the JSON answer, empty fields for nulls.
pub fn write_row<W: io::Write>(out: &mut csv::Writer<W>, p: &Point) -> Result<(), csv::Error> {
    let mut field = String::with_capacity(32);
    out.write_field(&p.participant_id)?;
    wearhouse_core::time::push_rfc3339(&mut field, &p.timestamp);
    out.write_field(&field)?;
    for v in [p.value, p.min, p.max, p.sum] {
        field.clear();
        if let Some(v) = v {
            let _ = write!(field, "{v}");
        }
        out.write_field(&field)?;
    }
    field.clear();
    let _ = write!(field, "{}", p.count);
    out.write_field(&field)?;
    out.write_field(p.text.as_deref().unwrap_or(""))?;
    out.write_record(None::<&[u8]>)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_quote_text_with_separators_and_leave_nulls_empty() {
        let p = Point {
            participant_id: "P001".into(),
            timestamp: "2025-06-01T00:00:30Z".parse().unwrap(),
            value: Some(2.5),
            min: None,
            max: Some(3.0),
            sum: None,
            count: 1,
            text: Some("say \"hi\", then".into()),
        };
        let mut out = writer(Vec::new());
        write_row(&mut out, &p).unwrap();
        let buf = String::from_utf8(out.into_inner().unwrap()).unwrap();
        assert_eq!(
            buf,
            "P001,2025-06-01T00:00:30Z,2.5,,3,,1,\"say \"\"hi\"\", then\"\n"
        );
    }
}
