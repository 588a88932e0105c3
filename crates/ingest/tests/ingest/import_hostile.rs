//! Importing an export made to hurt: an archive bomb, links out of the folder, to a device or
//! in a loop, a FIFO, a CSV header of a million columns. Each such file is refused and reported
//! (with the limit and how to raise it), nothing of it is read, the other files load, and the
//! import says it is incomplete.

use std::io::Write;
use std::path::Path;

use wearhouse_core::ParticipantId;
use wearhouse_core::store::writer::SampleWriter;
use wearhouse_core::testing::{TestBackend, TestDb};
use wearhouse_ingest::import::limits::Limits;
use wearhouse_ingest::import::{self, ImportReport, Timestamps};

use crate::import_export::{participant_in_new_york, raw_rows, write, write_export, zip_folder};

const G: &str = "Takeout/Fitbit/Global Export Data";

/// Imports `path` for `id` in local time within `limits`.
async fn import_within(
    db: &TestDb,
    id: &ParticipantId,
    path: &Path,
    limits: Limits,
) -> ImportReport {
    let writer = SampleWriter::new(&db.backend);
    import::import(
        &db.pool,
        &writer,
        id,
        path,
        Timestamps::Local,
        limits,
        |_| {},
    )
    .await
    .unwrap()
}

/// The reason `report` gives for the file whose path ends with `name`, and whether it was
/// refused.
fn reason_for(report: &ImportReport, name: &str) -> (String, bool) {
    let u = report
        .unread
        .iter()
        .find(|u| u.path.to_string_lossy().ends_with(name))
        .unwrap_or_else(|| panic!("{name} not reported: {:?}", report.unread));
    (u.reason.clone(), u.refused)
}

/// Adds to `archive` (the export of [`write_export`], zipped) the entries `names`, each about
/// 100 MiB of well-formed steps entries that deflate to about 100 KiB.
fn zip_with_bombs(dir: &Path, names: &[&str]) -> std::path::PathBuf {
    let export = dir.join("export");
    write_export(&export);
    let plain = dir.join("plain.zip");
    zip_folder(&export, &plain, &[]);
    let mut zip = zip::ZipWriter::new_append(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&plain)
            .unwrap(),
    )
    .unwrap();
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    // Well-formed JSON: entries apart by 256 KiB of spaces, which deflate about a thousandfold.
    let mut chunk = br#"{"dateTime":"10/07/26 08:00:00","value":"1"},"#.to_vec();
    chunk.resize(chunk.len() + 256 * 1024, b' ');
    for name in names {
        zip.start_file(format!("{G}/{name}"), options).unwrap();
        zip.write_all(b"[").unwrap();
        for _ in 0..400 {
            zip.write_all(&chunk).unwrap();
        }
        zip.write_all(br#"{"dateTime":"10/07/26 08:00:00","value":"1"}]"#)
            .unwrap();
    }
    zip.finish().unwrap();
    assert!(std::fs::metadata(&plain).unwrap().len() < names.len() as u64 * 200 * 1024);
    plain
}

/// Overwrites the start of entry `name`'s compressed data in `archive`, so inflating it fails.
fn corrupt_entry(archive: &Path, name: &str) {
    use std::io::{Seek, SeekFrom};
    let start = {
        let mut zip = zip::ZipArchive::new(std::fs::File::open(archive).unwrap()).unwrap();
        let entry = zip.by_name(name).unwrap();
        entry.data_start().unwrap()
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(archive)
        .unwrap();
    file.seek(SeekFrom::Start(start)).unwrap();
    file.write_all(&[0xff; 64]).unwrap();
}

fn small_limit() -> Limits {
    Limits {
        max_entry_bytes: 256 * 1024,
        ..Limits::default()
    }
}

#[tokio::test]
async fn a_zip_bomb_past_the_size_limit_is_refused_and_the_other_entries_load() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let id = participant_in_new_york(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let archive = zip_with_bombs(
        dir.path(),
        &["steps-2026-10-07.json", "altitude-2026-10-07.json"],
    );

    // Inflating the ignored entry would fail: it is not even opened.
    corrupt_entry(&archive, &format!("{G}/altitude-2026-10-07.json"));

    let report = import_within(&db, &id, &archive, small_limit()).await;
    assert_eq!(report.files_total, 10);
    assert_eq!(report.files_imported, 7, "{:?}", report.unread);
    let (why, refused) = reason_for(&report, "steps-2026-10-07.json");
    assert!(refused);
    assert!(why.contains("larger than the 256 KiB limit"), "{why}");
    assert!(why.contains("--max-entry-bytes"), "{why}");
    // An entry the importer does not read is not decompressed: no limit met, no inflate error.
    let (why, refused) = reason_for(&report, "altitude-2026-10-07.json");
    assert!(!refused);
    assert_eq!(why, "not a file the importer understands");
    assert!(!report.is_complete());
    assert!(
        report
            .summary()
            .contains("import incomplete: 1 file(s) refused")
    );

    // The other entries loaded in full; nothing of the bomb did.
    let rows = raw_rows(&db).await;
    assert_eq!(rows.len() as u64, report.rows_read);
    assert!(rows.iter().all(|r| r.0 != "steps" || r.2 != Some(1.0)));
}

#[tokio::test]
async fn a_zip_bomb_within_the_size_limit_is_stopped_by_its_compression_ratio() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let id = participant_in_new_york(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let archive = zip_with_bombs(dir.path(), &["steps-2026-10-07.json"]);

    let report = import_within(&db, &id, &archive, Limits::default()).await;
    assert_eq!(report.files_imported, 7, "{:?}", report.unread);
    let (why, refused) = reason_for(&report, "steps-2026-10-07.json");
    assert!(refused);
    assert!(
        why.contains("more than 100 times its compressed size"),
        "{why}"
    );
    assert!(why.contains("unpack the archive"), "{why}");
    assert!(!report.is_complete());
}

#[tokio::test]
async fn the_import_command_reports_a_refused_entry_and_exits_with_3() {
    let db = TestDb::new(TestBackend::Postgres).await;
    participant_in_new_york(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let archive = zip_with_bombs(dir.path(), &["steps-2026-10-07.json"]);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wearhouse-ingest"))
        .args(["import", "--participant", "P001", "--database-url", &db.url])
        .args(["--max-entry-bytes", "256KiB", "--path"])
        .arg(&archive)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("imported 7 of 9 files"), "{stdout}");
    assert!(
        stdout.contains("steps-2026-10-07.json: refused: larger than the 256 KiB limit"),
        "{stdout}"
    );
    assert!(stdout.contains("import incomplete"), "{stdout}");

    // A size it cannot read is named with the flag.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wearhouse-ingest"))
        .args(["import", "--participant", "P001", "--database-url", &db.url])
        .args(["--max-entry-bytes", "lots", "--path"])
        .arg(&archive)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--max-entry-bytes"), "{stderr}");
}

#[tokio::test]
async fn a_folder_import_reads_no_link_device_or_fifo_and_reports_each() {
    use std::os::unix::fs::symlink;
    let db = TestDb::new(TestBackend::Postgres).await;
    let id = participant_in_new_york(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    write_export(&export);
    let g = export.join(G);
    // A file outside the export, reachable only through a link.
    let outside = dir.path().join("steps-2026-10-09.json");
    std::fs::write(
        &outside,
        r#"[{"dateTime":"10/09/26 08:00:00","value":"99"}]"#,
    )
    .unwrap();
    symlink(&outside, g.join("steps-2026-10-09.json")).unwrap();
    symlink("/dev/zero", g.join("heart_rate-2026-10-10.json")).unwrap();
    // A loop through the folder itself, and a link to itself.
    symlink("..", export.join("Takeout/again")).unwrap();
    symlink("calories-loop.json", g.join("calories-loop.json")).unwrap();
    let fifo = g.join("distance-2026-10-11.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // A regular file over the limit, read up to it and refused.
    let big = format!(
        "[{}]",
        vec![r#"{"dateTime":"10/12/26 08:00:00","value":"1"}"#; 10_000].join(",")
    );
    write(&export, &format!("{G}/steps-2026-10-12.json"), &big);

    let report = import_within(&db, &id, &export, small_limit()).await;
    assert_eq!(report.files_total, 8 + 6, "{:?}", report.unread);
    assert_eq!(report.files_imported, 7, "{:?}", report.unread);
    for link in [
        "steps-2026-10-09.json",
        "heart_rate-2026-10-10.json",
        "Takeout/again",
        "calories-loop.json",
    ] {
        let (why, refused) = reason_for(&report, link);
        assert!(refused && why.contains("a symbolic link"), "{link}: {why}");
    }
    let (why, refused) = reason_for(&report, "distance-2026-10-11.json");
    assert!(refused && why.contains("not a regular file"), "{why}");
    let (why, refused) = reason_for(&report, "steps-2026-10-12.json");
    assert!(
        refused && why.contains("larger than the 256 KiB limit"),
        "{why}"
    );
    assert!(!report.is_complete());
    // Each refused file is listed once, with its path.
    let summary = report.summary();
    assert_eq!(summary.matches("refused: ").count(), 6, "{summary}");
    assert!(
        summary.contains("Takeout/again: refused: a symbolic link"),
        "{summary}"
    );

    let rows = raw_rows(&db).await;
    assert_eq!(rows.len() as u64, report.rows_read);
    assert!(
        rows.iter().all(|r| r.2 != Some(99.0)),
        "the linked file was not read"
    );
}

#[tokio::test]
async fn a_csv_header_of_a_million_columns_gets_a_short_report_naming_the_file() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let id = participant_in_new_york(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    write_export(&export);
    let hrv = "Takeout/Fitbit/Heart Rate Variability";
    let columns = |n: usize| {
        (0..n)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let huge = format!("{}\n", columns(1_000_000));
    assert!(huge.len() > 6_000_000);
    write(
        &export,
        &format!("{hrv}/Daily Heart Rate Variability Summary - 2026-10-12.csv"),
        &huge,
    );
    // Under the line limit, the header is read and the report names five of its columns.
    write(
        &export,
        &format!("{hrv}/Daily Heart Rate Variability Summary - 2026-10-13.csv"),
        &format!("{}\n", columns(5_000)),
    );

    let report = import_within(&db, &id, &export, Limits::default()).await;
    assert_eq!(report.files_imported, 7, "{:?}", report.unread);
    let (why, refused) = reason_for(&report, "Summary - 2026-10-12.csv");
    assert!(refused);
    assert!(why.contains("a CSV line longer than 64 KiB"), "{why}");
    let (why, refused) = reason_for(&report, "Summary - 2026-10-13.csv");
    assert!(!refused);
    assert_eq!(
        why,
        r#"expected timestamp and rmssd columns, found ["c0", "c1", "c2", "c3", "c4"] and 4995 more"#
    );
    let summary = report.summary();
    assert!(summary.len() < 2_000, "{} bytes: {summary}", summary.len());
    assert!(
        summary.contains("Daily Heart Rate Variability Summary - 2026-10-12.csv"),
        "{summary}"
    );
}
