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
use wearhouse_ingest::import::limits::Limits;
use wearhouse_ingest::import::{self, Timestamps};

/// A raw_data row: data type, instant, numeric and text value.
pub(crate) type Row = (String, DateTime<Utc>, Option<f64>, Option<String>);

pub(crate) fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A small Takeout folder: seven understood files and one the importer does not read.
pub(crate) fn write_export(root: &Path) {
    let g = "Takeout/Fitbit/Global Export Data";
    write(
        root,
        &format!("{g}/heart_rate-2026-10-05.json"),
        r#"[{"dateTime":"10/05/26 08:00:05","value":{"bpm":61,"confidence":2}},{"dateTime":"10/05/26 08:00:15","value":{"bpm":64,"confidence":3}}]"#,
    );
    write(
        root,
        &format!("{g}/steps-2026-10-05.json"),
        r#"[{"dateTime":"10/05/26 08:00:00","value":"37"},{"dateTime":"10/05/26 08:01:00","value":"0"}]"#,
    );
    write(
        root,
        &format!("{g}/distance-2026-10-05.json"),
        r#"[{"dateTime":"10/05/26 08:00:00","value":"2819"}]"#,
    );
    write(
        root,
        &format!("{g}/calories-2026-10-05.json"),
        r#"[{"dateTime":"10/05/26 08:00:00","value":"1.52"}]"#,
    );
    write(
        root,
        &format!("{g}/resting_heart_rate-2026-10-05.json"),
        r#"[{"dateTime":"10/05/26 00:00:00","value":{"date":"10/05/26","value":57.4,"error":6.9}}]"#,
    );
    write(
        root,
        &format!("{g}/sleep-2026-10-05.json"),
        r#"[{"dateOfSleep":"2026-10-05","type":"stages","levels":{"summary":{},"data":[{"dateTime":"2026-10-04T23:10:00.000","level":"light","seconds":90},{"dateTime":"2026-10-04T23:11:30.000","level":"deep","seconds":60}]}}]"#,
    );
    write(
        root,
        "Takeout/Fitbit/Heart Rate Variability/Daily Heart Rate Variability Summary - 2026-10-05.csv",
        "timestamp,rmssd,nremhr,entropy\n2026-10-05T00:00:00,41.2,55.1,2.9\n",
    );
    write(
        root,
        &format!("{g}/altitude-2026-10-05.json"),
        r#"[{"dateTime":"10/05/26 08:00:00","value":"10"}]"#,
    );
}

pub(crate) async fn participant_in_new_york(db: &TestDb) -> ParticipantId {
    let id = ParticipantId::parse("P001").unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    participants::upsert(
        &mut conn,
        &NewParticipant {
            participant_id: id.clone(),
            timezone: New_York,
            provider: Some("fitbit".into()),
            enrolled_at: None,
            study_id: None,
        },
    )
    .await
    .unwrap();
    id
}

/// Imports `path` for `id` in local time, without watching progress.
pub(crate) async fn import_quietly(
    db: &TestDb,
    id: &ParticipantId,
    path: &Path,
) -> Result<import::ImportReport, import::ImportError> {
    let writer = SampleWriter::new(&db.backend);
    import::import(
        &db.pool,
        &writer,
        id,
        path,
        Timestamps::Local,
        Limits::default(),
        |_| {},
    )
    .await
}

pub(crate) async fn raw_rows(db: &TestDb) -> Vec<Row> {
    sqlx::query_as(
        "select data_type, timestamp, value_numeric, value_text from raw_data
         order by data_type, timestamp",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_export_is_imported_in_the_participants_zone_once_and_unknown_files_are_reported() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let id = participant_in_new_york(&db).await;
    let dir = tempfile::tempdir().unwrap();
    write_export(dir.path());

    let writer = SampleWriter::new(&db.backend);
    let mut seen = Vec::new();
    let report = import::import(
        &db.pool,
        &writer,
        &id,
        dir.path(),
        Timestamps::Local,
        Limits::default(),
        |p| seen.push(p.files_done),
    )
    .await
    .unwrap();
    assert_eq!(report.files_total, 8);
    assert_eq!(seen, (1..=8).collect::<Vec<_>>());
    assert_eq!(report.files_imported, 7);
    assert_eq!(report.unread.len(), 1);
    assert!(report.unread[0].path.ends_with("altitude-2026-10-05.json"));
    assert!(!report.unread[0].refused);
    assert!(
        report.is_complete(),
        "a file not understood leaves the import complete"
    );
    assert_eq!(report.rows_read, 2 + 2 + 1 + 1 + 1 + 5 + 1);
    assert_eq!(report.rows_written, report.rows_read);

    let rows = raw_rows(&db).await;
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

    let again = import_quietly(&db, &id, dir.path()).await.unwrap();
    assert_eq!(again.rows_read, report.rows_read);
    assert_eq!(again.rows_written, 0, "importing again changes nothing");
    let count: i64 = sqlx::query_scalar("select count(*) from raw_data")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count as usize, rows.len());

    // Read as UTC instead, the same file lands four hours earlier.
    let utc = import::import(
        &db.pool,
        &writer,
        &id,
        dir.path(),
        Timestamps::Utc,
        Limits::default(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(utc.rows_written, utc.rows_read);
}

/// Zips every file below `root` (paths relative to it), with folder entries as Takeout's
/// archives have them, plus `extra` entries written as given.
pub(crate) fn zip_folder(root: &Path, archive: &Path, extra: &[(&str, &str)]) {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(archive).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            if path.is_dir() {
                zip.add_directory(name, options).unwrap();
                stack.push(path);
            } else {
                zip.start_file(name, options).unwrap();
                zip.write_all(&std::fs::read(&path).unwrap()).unwrap();
            }
        }
    }
    for (name, text) in extra {
        zip.start_file(*name, options).unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
}

#[tokio::test]
async fn a_takeout_zip_imports_the_same_rows_as_its_folder() {
    let folder_db = TestDb::new(TestBackend::Postgres).await;
    let zip_db = TestDb::new(TestBackend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    write_export(&export);
    let archive = dir.path().join("takeout-20261005T120000Z-001.zip");
    // An entry whose name climbs out of the archive is reported, not read.
    zip_folder(
        &export,
        &archive,
        &[(
            "../steps-2026-10-06.json",
            r#"[{"dateTime":"10/06/26 08:00:00","value":"5"}]"#,
        )],
    );

    let id = participant_in_new_york(&folder_db).await;
    participant_in_new_york(&zip_db).await;
    let from_folder = import_quietly(&folder_db, &id, &export).await.unwrap();
    let mut seen = Vec::new();
    let from_zip = import::import(
        &zip_db.pool,
        &SampleWriter::new(&zip_db.backend),
        &id,
        &archive,
        Timestamps::Local,
        Limits::default(),
        |p| seen.push((p.files_done, p.files_total)),
    )
    .await
    .unwrap();

    assert_eq!(from_zip.files_total, from_folder.files_total + 1);
    assert_eq!(seen.last(), Some(&(9, 9)));
    assert_eq!(from_zip.files_imported, 7);
    assert_eq!(from_zip.rows_read, from_folder.rows_read);
    assert_eq!(from_zip.rows_written, from_folder.rows_written);
    let reasons: Vec<(String, String)> = from_zip
        .unread
        .iter()
        .map(|u| (u.path.display().to_string(), u.reason.clone()))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(!from_zip.is_complete(), "the climbing entry was refused");
    assert!(
        reasons
            .iter()
            .any(|(p, r)| p == "../steps-2026-10-06.json" && r.contains("leaves the archive")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(p, _)| p.ends_with("altitude-2026-10-05.json")),
        "{reasons:?}"
    );
    assert_eq!(raw_rows(&zip_db).await, raw_rows(&folder_db).await);
    assert!(!raw_rows(&zip_db).await.is_empty());
}

#[tokio::test]
async fn a_file_that_is_not_a_zip_is_refused_with_what_to_pass_instead() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let id = participant_in_new_york(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("steps-2026-10-05.json");
    std::fs::write(&file, "[]").unwrap();
    let err = import_quietly(&db, &id, &file)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a zip archive"), "{err}");
    assert!(
        err.contains("pass the export folder or the Takeout .zip"),
        "{err}"
    );
    assert_eq!(raw_rows(&db).await, vec![]);
}
