//! The CSV export: the same rows as the JSON answer, streamed from a server-side cursor
//! (`fetch`) through a small bounded channel, so memory stays flat however long the series.
//! Parameters, participants and the database connection are checked before the first byte,
//! so those failures still get a JSON error with the right status; a failure mid-stream
//! aborts the body, which the client sees as a truncated download, never as a complete one.

use std::fmt::Write as _;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::sync::mpsc;
use wearhouse_core::store::series::Point;

use super::DataRequest;
use crate::error::{ApiError, error_chain};
use crate::params::QueryParams;
use crate::state::AppState;

/// The header row.
pub const HEADER: &str = "participant_id,timestamp,value,min,max,sum,count,text\n";
/// Bytes gathered before a chunk is handed to the client.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks buffered between the database and a slow client.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Answers a CSV export. Without `limit`, every row of the routed resolution is streamed.
pub async fn export(state: &AppState, params: &QueryParams) -> Result<Response, ApiError> {
    let request = DataRequest::parse(params, false)?;
    let mut conn = state.pool.acquire().await?;
    request.check_participants(&mut conn).await?;
    let plan = request.plan;
    let row_limit = if request.explicit_limit {
        plan.page.limit.map(|l| l as usize)
    } else {
        None
    };
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
        let mut rows = plan
            .bind_rows(sqlx::query_as::<_, Point>(&sql))
            .fetch(&mut *conn);
        let mut buf = String::with_capacity(CHUNK_BYTES + 1024);
        buf.push_str(HEADER);
        let mut written = 0usize;
        while let Some(row) = rows.next().await {
            if row_limit.is_some_and(|l| written >= l) {
                break;
            }
            match row {
                Ok(p) => {
                    write_row(&mut buf, &p);
                    written += 1;
                }
                Err(e) => {
                    tracing::error!(error = %error_chain(&e), rows = written, "csv export failed");
                    let _ = tx
                        .send(Err(std::io::Error::other("csv export failed")))
                        .await;
                    return;
                }
            }
            if buf.len() >= CHUNK_BYTES {
                let chunk = Bytes::from(std::mem::take(&mut buf));
                if tx.send(Ok(chunk)).await.is_err() {
                    // The client went away; dropping the cursor ends the query.
                    return;
                }
                buf.reserve(CHUNK_BYTES + 1024);
            }
        }
        let _ = tx.send(Ok(Bytes::from(buf))).await;
        tracing::debug!(rows = written, %resolution, "csv export finished");
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

/// Appends one row: numbers as Rust prints them (shortest form that reads back exactly),
/// times in RFC 3339 UTC as in the JSON answer, empty fields for nulls.
pub fn write_row(buf: &mut String, p: &Point) {
    buf.push_str(&p.participant_id);
    buf.push(',');
    wearhouse_core::time::push_rfc3339(buf, &p.timestamp);
    for v in [p.value, p.min, p.max, p.sum] {
        buf.push(',');
        if let Some(v) = v {
            let _ = write!(buf, "{v}");
        }
    }
    let _ = write!(buf, ",{}", p.count);
    buf.push(',');
    if let Some(t) = &p.text {
        push_field(buf, t);
    }
    buf.push('\n');
}

/// A text field, quoted when it holds a separator, quote or line break (RFC 4180).
fn push_field(buf: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        buf.push('"');
        buf.push_str(&s.replace('"', "\"\""));
        buf.push('"');
    } else {
        buf.push_str(s);
    }
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
        let mut buf = String::new();
        write_row(&mut buf, &p);
        assert_eq!(
            buf,
            "P001,2025-06-01T00:00:30Z,2.5,,3,,1,\"say \"\"hi\"\", then\"\n"
        );
    }
}
