//! PostgreSQL's binary COPY format: the encoder for sample rows and the loop that streams
//! tuples to the server a chunk at a time. Nothing to format on our side, no text to parse on
//! the server's.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::error::Result;
use crate::sample::Sample;

const COPY_CHUNK_BYTES: usize = 1 << 20;

pub(super) const STAGING_COPY: &str = "copy wearhouse_staging \
    (timestamp, participant_id, data_type, value_numeric, value_text) from stdin with (format binary)";
pub(super) const RAW_COPY: &str = "copy raw_data \
    (timestamp, participant_id, data_type, value_numeric, value_text) from stdin with (format binary)";

/// COPY's binary format: no text to format here or to parse in the server.
pub(super) async fn copy_rows(
    conn: &mut PgConnection,
    statement: &str,
    samples: &[Sample],
    order: &[usize],
) -> Result<()> {
    copy_binary(conn, statement, order.len(), |buf, k| {
        encode_row(buf, &samples[order[k]])
    })
    .await
}

/// Runs a binary COPY `statement` of `rows` tuples, each written by `encode(buf, index)`,
/// sending about [`COPY_CHUNK_BYTES`] at a time.
pub(super) async fn copy_binary(
    conn: &mut PgConnection,
    statement: &str,
    rows: usize,
    mut encode: impl FnMut(&mut Vec<u8>, usize),
) -> Result<()> {
    let mut copy = conn.copy_in_raw(statement).await?;
    let mut buf = copy_header(COPY_CHUNK_BYTES);
    for i in 0..rows {
        encode(&mut buf, i);
        if buf.len() >= COPY_CHUNK_BYTES {
            copy.send(buf.as_slice()).await?;
            buf.clear();
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    copy.send(buf.as_slice()).await?;
    copy.finish().await?;
    Ok(())
}

/// Microseconds between the Unix epoch and PostgreSQL's epoch, 2000-01-01 UTC.
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// A buffer holding binary COPY's signature, flags and (empty) header extension.
fn copy_header(capacity: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(capacity + 4096);
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes()); // flags
    buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    buf
}

/// One tuple: field count, then each field as length and big-endian value (-1 for NULL).
fn encode_row(buf: &mut Vec<u8>, s: &Sample) {
    buf.extend_from_slice(&5i16.to_be_bytes());
    put_timestamp(buf, s.timestamp);
    put_text(buf, Some(s.participant_id.as_str()));
    put_text(buf, Some(s.metric.name()));
    put_float(buf, s.value_numeric);
    put_text(buf, s.value_text.as_deref());
}

pub(super) fn put_timestamp(buf: &mut Vec<u8>, t: DateTime<Utc>) {
    let micros = t.timestamp_micros() - PG_EPOCH_OFFSET_MICROS;
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&micros.to_be_bytes());
}

pub(super) fn put_float(buf: &mut Vec<u8>, v: Option<f64>) {
    match v {
        Some(v) => {
            buf.extend_from_slice(&8i32.to_be_bytes());
            buf.extend_from_slice(&v.to_be_bytes());
        }
        None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

pub(super) fn put_text(buf: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(t) => {
            buf.extend_from_slice(&(t.len() as i32).to_be_bytes());
            buf.extend_from_slice(t.as_bytes());
        }
        None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParticipantId;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn rows_are_encoded_in_copy_binary_format() {
        let p = ParticipantId::parse("P1").unwrap();
        let s = Sample::sleep_stage(p, at(946_684_801), "deep");
        let mut buf = Vec::new();
        encode_row(&mut buf, &s);
        let mut expected = vec![0, 5, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0x0f, 0x42, 0x40];
        expected.extend_from_slice(&[0, 0, 0, 2, b'P', b'1', 0, 0, 0, 11]);
        expected.extend_from_slice(b"sleep_stage");
        expected.extend_from_slice(&[0, 0, 0, 8]);
        expected.extend_from_slice(&2.0f64.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 4]);
        expected.extend_from_slice(b"deep");
        assert_eq!(buf, expected);
    }
}
