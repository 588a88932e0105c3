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
//! Every other file is reported with the reason, never skipped silently.
//!
//! Time zone: Google does not specify whether the export's `MM/DD/YY HH:MM:SS` times are UTC or
//! local (reference §5, unverified), so it is a flag: `--timestamps local` (the default, the
//! participant's zone, as the Fitbit API reports) or `--timestamps utc`.

mod files;

use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use clap::{Args, ValueEnum};
use serde::Serialize;
use sqlx::PgPool;
use wearhouse_core::config::DatabaseArgs;
use wearhouse_core::store::participants;
use wearhouse_core::store::writer::SampleWriter;
use wearhouse_core::{ParticipantId, Sample};

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
}

/// A file that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unread {
    pub path: PathBuf,
    pub reason: String,
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

/// The files of an export, by their path inside it, read one at a time.
enum Export {
    Folder {
        root: PathBuf,
        files: Vec<PathBuf>,
    },
    Zip {
        archive: Box<zip::ZipArchive<std::fs::File>>,
        /// File entries' names (as paths) and their index in the archive.
        files: Vec<(PathBuf, usize)>,
    },
}

impl Export {
    fn open(path: &Path) -> Result<Export, ImportError> {
        let io = |source| ImportError::Io {
            path: path.to_owned(),
            source,
        };
        if std::fs::metadata(path).map_err(io)?.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files)?;
            let mut files: Vec<PathBuf> = files
                .into_iter()
                .map(|f| f.strip_prefix(path).map(Path::to_owned).unwrap_or(f))
                .collect();
            files.sort();
            return Ok(Export::Folder {
                root: path.to_owned(),
                files,
            });
        }
        let file = std::fs::File::open(path).map_err(io)?;
        let archive = zip::ZipArchive::new(file).map_err(|e| ImportError::NotAnArchive {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let mut files: Vec<(PathBuf, usize)> = (0..archive.len())
            .filter_map(|i| {
                let name = archive.name_for_index(i)?.ok()?;
                (!name.ends_with('/')).then(|| (PathBuf::from(name.as_ref()), i))
            })
            .collect();
        files.sort();
        Ok(Export::Zip {
            archive: Box::new(archive),
            files,
        })
    }

    fn names(&self) -> Vec<PathBuf> {
        match self {
            Export::Folder { files, .. } => files.clone(),
            Export::Zip { files, .. } => files.iter().map(|(name, _)| name.clone()).collect(),
        }
    }

    /// The bytes of file number `i` of [`Export::names`].
    fn read(&mut self, i: usize) -> Result<Vec<u8>, String> {
        match self {
            Export::Folder { root, files } => {
                std::fs::read(root.join(&files[i])).map_err(|e| format!("cannot read: {e}"))
            }
            Export::Zip { archive, files } => {
                // Only names are matched, nothing is written out; still, a name that would
                // leave the archive's folder marks an archive not made by an export.
                let enclosed = files[i].0.components().all(|c| {
                    matches!(
                        c,
                        std::path::Component::Normal(_) | std::path::Component::CurDir
                    )
                });
                if !enclosed {
                    return Err("its name leaves the archive's folder; not read".into());
                }
                let mut entry = archive
                    .by_index(files[i].1)
                    .map_err(|e| format!("cannot read from the archive: {e}"))?;
                let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
                std::io::Read::read_to_end(&mut entry, &mut bytes)
                    .map_err(|e| format!("cannot read from the archive: {e}"))?;
                Ok(bytes)
            }
        }
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ImportError> {
    let io = |source| ImportError::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Imports the export at `path` (a folder or a `.zip`) for `participant`, calling `progress`
/// after each file.
pub async fn import(
    pool: &PgPool,
    writer: &SampleWriter,
    participant: &ParticipantId,
    path: &Path,
    timestamps: Timestamps,
    mut progress: impl FnMut(Progress),
) -> Result<ImportReport, ImportError> {
    let mut conn = pool.acquire().await.map_err(wearhouse_core::Error::from)?;
    let row = participants::get(&mut conn, participant).await?;
    let tz: Tz = match timestamps {
        Timestamps::Utc => Tz::UTC,
        Timestamps::Local => row.timezone.parse().unwrap_or(Tz::UTC),
    };
    let mut export = Export::open(path)?;
    let names = export.names();
    let mut report = ImportReport {
        files_total: names.len(),
        ..Default::default()
    };
    for (i, name) in names.iter().enumerate() {
        let read: Result<Vec<Sample>, String> = export
            .read(i)
            .and_then(|bytes| files::read(participant, tz, name, &bytes));
        match read {
            Ok(samples) => {
                let summary = writer.write(&mut conn, &samples).await?;
                report.files_imported += 1;
                report.rows_read += samples.len() as u64;
                report.rows_written += summary.inserted + summary.updated;
            }
            Err(reason) => report.unread.push(Unread {
                path: name.clone(),
                reason,
            }),
        }
        progress(Progress {
            files_done: i + 1,
            files_total: names.len(),
            rows_read: report.rows_read,
        });
    }
    Ok(report)
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
        |p| {
            eprintln!(
                "{}/{} files, {} rows",
                p.files_done, p.files_total, p.rows_read
            );
        },
    )
    .await?;
    pool.close().await;
    let mut summary = format!(
        "imported {} of {} files: {} rows read, {} new or changed; {} file(s) not imported\n",
        report.files_imported,
        report.files_total,
        report.rows_read,
        report.rows_written,
        report.unread.len()
    );
    for u in &report.unread {
        summary.push_str(&format!("  {}: {}\n", u.path.display(), u.reason));
    }
    Ok((report, summary))
}
