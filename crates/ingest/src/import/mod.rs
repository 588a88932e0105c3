//! `import`: history from a Fitbit data export or a Google Takeout folder (reference §5), for
//! one participant, through the same sink as the sources (the core writer: loading the same
//! rows twice changes nothing).
//!
//! The export is a folder, or the `.zip` archive Takeout downloads as (read in place, one file
//! at a time). Files are recognised by name wherever they sit, so both
//! `Takeout/Fitbit/Global Export Data/` and the older `user-site-export/` layout work. Understood: `heart_rate-*.json`
//! (`{bpm, confidence}`), `steps-*.json`, `calories-*.json`, `distance-*.json` (centimetres, as
//! Fitbit's account export writes them), `resting_heart_rate-*.json`, `sleep-*.json` (the v1.2
//! shape, one `sleep_stage` sample every 30 s) and `Daily Heart Rate Variability Summary - *.csv`.
//! Every other file is reported with the reason, never skipped silently, and is not opened.
//!
//! An export comes from outside, so reading one is bounded whatever it holds (see [`limits`]):
//! - files are read as streams, a JSON file one top-level entry at a time (an entry of at most
//!   1 MiB), a CSV file one line at a time (at most 64 KiB);
//! - at most `--max-entry-bytes` (default 512 MiB) are read from one file, counted as read
//!   after decompression (an archive's declared sizes are not trusted), and an archive entry
//!   may inflate to at most 100 times its compressed size (past its first MiB);
//! - one file yields at most `--max-entry-samples` samples (default 2 000 000), and a sleep
//!   segment covers at most a day;
//! - a folder is walked without following symbolic links, and only regular files are read;
//! - every reason in the report is a few hundred characters at most, naming a few items and
//!   "and N more".
//!
//! A file refused for one of these is reported with the limit and how to raise it, the rest of
//! the import goes on, and the report says the import is incomplete (`import` exits with 3).
//!
//! Time zone: Google does not specify whether the export's `MM/DD/YY HH:MM:SS` times are UTC or
//! local (reference §5, unverified), so it is a flag: `--timestamps local` (the default, the
//! participant's zone, as the Fitbit API reports) or `--timestamps utc`.

mod export;
mod files;
pub mod limits;
mod metered;

use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use clap::{Args, ValueEnum};
use serde::Serialize;
use sqlx::PgPool;
use wearhouse_core::config::DatabaseArgs;
use wearhouse_core::store::participants;
use wearhouse_core::store::writer::SampleWriter;
use wearhouse_core::{ParticipantId, Sample};

use self::export::Export;
use self::limits::{ByteSize, Limits, bounded};
use self::metered::{Meter, Metered};

/// How the export's offset-less timestamps are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Timestamps {
    /// Local time in the participant's zone.
    Local,
    /// UTC.
    Utc,
}

/// Settings of `wearhouse-ingest import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// The participant the export belongs to (must be enrolled).
    #[arg(long, env = "WEARHOUSE_IMPORT_PARTICIPANT")]
    pub participant: String,

    /// The export: a folder (e.g. `Takeout/` or `user-site-export/`) or the archive Takeout
    /// downloads as (`takeout-….zip`).
    #[arg(long, env = "WEARHOUSE_IMPORT_PATH")]
    pub path: PathBuf,

    /// How the export's timestamps are read; Google does not document it.
    #[arg(long, env = "WEARHOUSE_IMPORT_TIMESTAMPS", value_enum, default_value_t = Timestamps::Local)]
    pub timestamps: Timestamps,

    /// The study the participant must belong to: a check against importing into the wrong
    /// participant (the import refuses when they are in another study).
    #[arg(long, env = "WEARHOUSE_IMPORT_STUDY")]
    pub study: Option<String>,

    /// The most bytes read from one file of the export, counted as read (after decompression
    /// for an archive entry); a larger file is reported and not imported, and the rest of the
    /// import goes on. Sizes such as `512MiB`, `64M`, `1G` or plain bytes.
    #[arg(
        long,
        env = "WEARHOUSE_IMPORT_MAX_ENTRY_BYTES",
        default_value = "512MiB"
    )]
    pub max_entry_bytes: ByteSize,

    /// The most samples one file may yield; they are held in memory (about 150 bytes each)
    /// until the file is written. A file yielding more is reported and not imported.
    #[arg(long, env = "WEARHOUSE_IMPORT_MAX_ENTRY_SAMPLES", default_value_t = limits::DEFAULT_MAX_ENTRY_SAMPLES)]
    pub max_entry_samples: usize,
}

impl ImportArgs {
    /// The limits these settings ask for.
    pub fn limits(&self) -> Limits {
        Limits {
            max_entry_bytes: self.max_entry_bytes.0,
            max_entry_samples: self.max_entry_samples,
        }
    }
}

/// A file that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unread {
    pub path: PathBuf,
    /// Why, in at most a few hundred characters.
    pub reason: String,
    /// Whether the file was refused for safety (over a limit, a link, not a regular file, a
    /// name leaving the archive) rather than not understood: the import is then incomplete.
    pub refused: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub files_total: usize,
    pub files_imported: usize,
    /// Samples read from the files.
    pub rows_read: u64,
    /// Rows that were new or changed in the database.
    pub rows_written: u64,
    pub unread: Vec<Unread>,
}

impl ImportReport {
    /// What was imported, then each file not imported with why (its path cut to 200
    /// characters, its reason to a few hundred), then whether the import is incomplete.
    pub fn summary(&self) -> String {
        let mut summary = format!(
            "imported {} of {} files: {} rows read, {} new or changed; {} file(s) not imported\n",
            self.files_imported,
            self.files_total,
            self.rows_read,
            self.rows_written,
            self.unread.len()
        );
        for u in &self.unread {
            let path = limits::bounded_to(&u.path.display().to_string(), 200);
            let refused = if u.refused { "refused: " } else { "" };
            summary.push_str(&format!("  {path}: {refused}{}\n", u.reason));
        }
        if !self.is_complete() {
            let refused = self.unread.iter().filter(|u| u.refused).count();
            summary.push_str(&format!(
                "import incomplete: {refused} file(s) refused (above); the other files were imported\n"
            ));
        }
        summary
    }

    /// Whether no file was refused for safety (files the importer does not understand do not
    /// count: an export holds many).
    pub fn is_complete(&self) -> bool {
        !self.unread.iter().any(|u| u.refused)
    }
}

/// The files of an export read one at a time, as `import` reads them, without a database:
/// each file's samples, or why it was not read. Only one file's samples are held at a time.
pub struct ExportReader {
    export: Export,
    names: Vec<PathBuf>,
    next: usize,
    participant: ParticipantId,
    tz: Tz,
    limits: Limits,
}

impl ExportReader {
    /// The export at `path` (a folder or a `.zip`), its offset-less times read in `tz`.
    pub fn open(
        path: &Path,
        participant: &ParticipantId,
        tz: Tz,
        limits: Limits,
    ) -> Result<ExportReader, ImportError> {
        let export = Export::open(path)?;
        let names = export.names();
        Ok(ExportReader {
            export,
            names,
            next: 0,
            participant: participant.clone(),
            tz,
            limits,
        })
    }

    /// How many files the export holds.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the export holds no file.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The next file's name and samples (or why it was not read), until none is left.
    pub fn next_file(&mut self) -> Option<(PathBuf, Result<Vec<Sample>, Skip>)> {
        let i = self.next;
        let name = self.names.get(i)?.clone();
        self.next += 1;
        let result = read_file(&mut self.export, i, &self.participant, self.tz, self.limits);
        Some((name, result))
    }
}

/// Why one file was not imported.
#[derive(Debug)]
pub enum Skip {
    /// Not understood: an unknown name, or content that is not what its name says.
    NotRead(String),
    /// Refused for safety; the import is incomplete.
    Refused(String),
}

/// Progress after each file.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub files_done: usize,
    pub files_total: usize,
    pub rows_read: u64,
}

/// Why an import could not run.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is a file but not a zip archive ({reason}); pass the export folder or the Takeout .zip"
    )]
    NotAnArchive { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] wearhouse_core::Error),
}

/// Imports the export at `path` (a folder or a `.zip`) for `participant`, within `limits`,
/// calling `progress` after each file.
pub async fn import(
    pool: &PgPool,
    writer: &SampleWriter,
    participant: &ParticipantId,
    path: &Path,
    timestamps: Timestamps,
    limits: Limits,
    mut progress: impl FnMut(Progress),
) -> Result<ImportReport, ImportError> {
    let mut conn = pool.acquire().await.map_err(wearhouse_core::Error::from)?;
    let row = participants::get(&mut conn, participant).await?;
    let tz: Tz = match timestamps {
        Timestamps::Utc => Tz::UTC,
        Timestamps::Local => row.timezone.parse().unwrap_or(Tz::UTC),
    };
    let mut files = ExportReader::open(path, participant, tz, limits)?;
    let mut report = ImportReport {
        files_total: files.len(),
        ..Default::default()
    };
    let mut i = 0;
    while let Some((name, result)) = files.next_file() {
        match result {
            Ok(samples) => {
                let summary = writer.write(&mut conn, &samples).await?;
                report.files_imported += 1;
                report.rows_read += samples.len() as u64;
                report.rows_written += summary.inserted + summary.updated;
            }
            Err(skip) => {
                let (reason, refused) = match skip {
                    Skip::NotRead(reason) => (reason, false),
                    Skip::Refused(reason) => (reason, true),
                };
                report.unread.push(Unread {
                    path: name,
                    reason: bounded(&reason),
                    refused,
                });
            }
        }
        i += 1;
        progress(Progress {
            files_done: i,
            files_total: files.len(),
            rows_read: report.rows_read,
        });
    }
    Ok(report)
}

/// The samples of file number `i` of `export`: refused before it is opened when it is not a
/// regular file, not opened at all when its name is not understood, else read as a stream.
fn read_file(
    export: &mut Export,
    i: usize,
    participant: &ParticipantId,
    tz: Tz,
    limits: Limits,
) -> Result<Vec<Sample>, Skip> {
    export.check(i).map_err(Skip::Refused)?;
    let kind = files::kind(export.name(i)).map_err(Skip::NotRead)?;
    let (inner, compressed) = export.open_file(i)?;
    let mut meter = Meter::new(limits.max_entry_bytes);
    if let Some(compressed) = compressed {
        meter = meter.compressed(compressed);
    }
    let input = Metered {
        inner,
        meter: &meter,
    };
    files::read(
        participant,
        tz,
        kind,
        &meter,
        input,
        limits.max_entry_samples,
    )
}

/// Runs `import`: progress on stderr, the summary (with every file not imported) returned.
pub async fn run(args: &ImportArgs) -> anyhow::Result<(ImportReport, String)> {
    let participant = ParticipantId::parse(&args.participant)?;
    let pool = args.database.connect().await?;
    let backend = {
        let mut conn = pool.acquire().await?;
        if let Some(study) = &args.study {
            let row = participants::get(&mut conn, &participant).await?;
            anyhow::ensure!(
                &row.study_id == study,
                "participant {participant} belongs to study {:?}, not {study:?}; check --participant and --study",
                row.study_id
            );
        }
        wearhouse_core::store::detect_backend(&mut conn).await?
    };
    let writer = SampleWriter::new(&backend);
    let report = import(
        &pool,
        &writer,
        &participant,
        &args.path,
        args.timestamps,
        args.limits(),
        |p| {
            eprintln!(
                "{}/{} files, {} rows",
                p.files_done, p.files_total, p.rows_read
            );
        },
    )
    .await?;
    pool.close().await;
    let summary = report.summary();
    Ok((report, summary))
}
