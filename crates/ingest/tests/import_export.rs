//! Importing a Fitbit export / Google Takeout folder written by the test: every understood file
//! lands in the warehouse in the participant's zone, an unknown file is reported, and importing
//! again changes nothing.

use std::path::Path;

use chrono::{DateTime, Utc};
use chrono_tz::America::New_York;
use wearhouse_core::ParticipantId;
use wearhouse_core::store::participants::{self, NewParticipant};
use wearhouse_core::store::writer::SampleWriter;
use wearhouse_core::testing::{TestBackend, TestDb};
use wearhouse_ingest::import::{self, Timestamps};

/// A raw_data row: data type, instant, numeric and text value.
type Row = (String, DateTime<Utc>, Option<f64>, Option<String>);

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn an_export_is_imported_in_the_participants_zone_once_and_unknown_files_are_reported() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let id = ParticipantId::parse("P001").unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    participants::upsert(
        &mut conn,
        &NewParticipant {
            participant_id: id.clone(),
            timezone: New_York,
            provider: Some("fitbit".into()),
            enrolled_at: None,
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let g = "Takeout/Fitbit/Global Export Data";
    write(
        dir.path(),
        &format!("{g}/heart_rate-2026-10-05.json"),
        r#"[{"dateTime":"10/05/26 08:00:05","value":{"bpm":61,"confidence":2}},{"dateTime":"10/05/26 08:00:15","value":{"bpm":64,"confidence":3}}]"#,
    );
    write(
        dir.path(),
        &format!("{g}/steps-2026-10-05.json"),
        r#"[{"dateTime":"10/05/26 08:00:00","value":"37"},{"dateTime":"10/05/26 08:01:00","value":"0"}]"#,
    );
    write(
        dir.path(),
        &format!("{g}/distance-2026-10-05.json"),
        r#"[{"dateTime":"10/05/26 08:00:00","value":"2819"}]"#,
    );
    write(
        dir.path(),
        &format!("{g}/calories-2026-10-05.json"),
        r#"[{"dateTime":"10/05/26 08:00:00","value":"1.52"}]"#,
    );
    write(
        dir.path(),
        &format!("{g}/resting_heart_rate-2026-10-05.json"),
        r#"[{"dateTime":"10/05/26 00:00:00","value":{"date":"10/05/26","value":57.4,"error":6.9}}]"#,
    );
    write(
        dir.path(),
        &format!("{g}/sleep-2026-10-05.json"),
        r#"[{"dateOfSleep":"2026-10-05","type":"stages","levels":{"summary":{},"data":[{"dateTime":"2026-10-04T23:10:00.000","level":"light","seconds":90},{"dateTime":"2026-10-04T23:11:30.000","level":"deep","seconds":60}]}}]"#,
    );
    write(
        dir.path(),
        "Takeout/Fitbit/Heart Rate Variability/Daily Heart Rate Variability Summary - 2026-10-05.csv",
        "timestamp,rmssd,nremhr,entropy\n2026-10-05T00:00:00,41.2,55.1,2.9\n",
    );
    write(
        dir.path(),
        &format!("{g}/altitude-2026-10-05.json"),
        r#"[{"dateTime":"10/05/26 08:00:00","value":"10"}]"#,
    );

    let writer = SampleWriter::new(&db.backend);
    let mut seen = Vec::new();
    let report = import::import(&db.pool, &writer, &id, dir.path(), Timestamps::Local, |p| {
        seen.push(p.files_done)
    })
    .await
    .unwrap();
    assert_eq!(report.files_total, 8);
    assert_eq!(seen, (1..=8).collect::<Vec<_>>());
    assert_eq!(report.files_imported, 7);
    assert_eq!(report.unread.len(), 1);
    assert!(report.unread[0].path.ends_with("altitude-2026-10-05.json"));
    assert_eq!(report.rows_read, 2 + 2 + 1 + 1 + 1 + 5 + 1);
    assert_eq!(report.rows_written, report.rows_read);

    let rows: Vec<Row> =
        sqlx::query_as("select data_type, timestamp, value_numeric, value_text from raw_data order by data_type, timestamp")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    // 08:00:05 in New York (EDT, UTC-4) is 12:00:05 UTC.
    assert!(rows.contains(&(
        "heart_rate".into(),
        at("2026-10-05T12:00:05Z"),
        Some(61.0),
        None
    )));
    assert!(rows.contains(&(
        "distance".into(),
        at("2026-10-05T12:00:00Z"),
        Some(28.19),
        None
    )));
    assert!(rows.contains(&(
        "resting_heart_rate".into(),
        at("2026-10-05T04:00:00Z"),
        Some(57.4),
        None
    )));
    assert!(rows.contains(&(
        "sleep_stage".into(),
        at("2026-10-05T03:11:30Z"),
        Some(2.0),
        Some("deep".into())
    )));
    assert!(rows.contains(&(
        "hrv_rmssd".into(),
        at("2026-10-05T04:00:00Z"),
        Some(41.2),
        None
    )));

    let again = import::import(
        &db.pool,
        &writer,
        &id,
        dir.path(),
        Timestamps::Local,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(again.rows_read, report.rows_read);
    assert_eq!(again.rows_written, 0, "importing again changes nothing");
    let count: i64 = sqlx::query_scalar("select count(*) from raw_data")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count as usize, rows.len());

    // Read as UTC instead, the same file lands four hours earlier.
    let utc = import::import(&db.pool, &writer, &id, dir.path(), Timestamps::Utc, |_| {})
        .await
        .unwrap();
    assert_eq!(utc.rows_written, utc.rows_read);
}
