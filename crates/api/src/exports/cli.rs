//! `wearhouse-api export`: the same documents as `GET /export/fhir` and `GET /export/omh`,
//! written to a file and recorded in the audit trail with the operating-system user as the
//! actor.

use std::path::PathBuf;

use anyhow::Context as _;
use chrono_tz::Tz;
use clap::{Args, ValueEnum};
use futures::StreamExt as _;
use tokio::io::AsyncWriteExt as _;
use wearhouse_core::config::DatabaseArgs;
use wearhouse_core::store::observations::LocalDays;
use wearhouse_core::store::{audit, participants};
use wearhouse_core::time::parse_day;
use wearhouse_core::{ErrorKind, ParticipantId};

use super::{Format, Subject};

/// The formats on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CliFormat {
    /// A FHIR R4 Bundle of Observations (JSON).
    Fhir,
    /// Open mHealth data points as a JSON array.
    Omh,
    /// Open mHealth data points, one per line (NDJSON).
    OmhNdjson,
}

impl From<CliFormat> for Format {
    fn from(f: CliFormat) -> Self {
        match f {
            CliFormat::Fhir => Format::Fhir,
            CliFormat::Omh => Format::OmhJson,
            CliFormat::OmhNdjson => Format::OmhNdjson,
        }
    }
}

/// `wearhouse-api export …`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The document: `fhir` (a FHIR R4 Bundle), `omh` (Open mHealth data points, a JSON
    /// array) or `omh-ndjson` (one data point per line).
    #[arg(long, value_enum, env = "WEARHOUSE_EXPORT_FORMAT")]
    pub format: CliFormat,
    /// The participant to export.
    #[arg(long, env = "WEARHOUSE_EXPORT_PARTICIPANT")]
    pub participant: String,
    /// First local day exported, in the participant's time zone (YYYY-MM-DD).
    #[arg(long, env = "WEARHOUSE_EXPORT_FROM")]
    pub from: String,
    /// First local day not exported (YYYY-MM-DD).
    #[arg(long, env = "WEARHOUSE_EXPORT_TO")]
    pub to: String,
    /// The file to write; an existing file is replaced.
    #[arg(long, env = "WEARHOUSE_EXPORT_OUT")]
    pub out: PathBuf,
}

/// Runs `export`.
pub async fn run(database: &DatabaseArgs, args: ExportArgs) -> anyhow::Result<()> {
    let id = ParticipantId::parse(&args.participant)
        .with_context(|| format!("invalid --participant {:?}", args.participant))?;
    let from = parse_day("from", &args.from).context("invalid --from")?;
    let to = parse_day("to", &args.to).context("invalid --to")?;
    LocalDays::new(from, to, Tz::UTC).context("invalid --to")?;
    let format = Format::from(args.format);
    let pool = database
        .connect()
        .await
        .context("cannot connect to the database; check DATABASE_URL and that it is running")?;
    let mut conn = pool.acquire().await?;
    let p = match participants::get(&mut conn, &id).await {
        Ok(p) => p,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            anyhow::bail!("there is no participant {}", id.as_str())
        }
        Err(e) => return Err(e.into()),
    };
    let tz: Tz = p.timezone.parse().unwrap_or(Tz::UTC);
    let days = LocalDays::new(from, to, tz)?;
    audit::append_cli(
        &mut *conn,
        audit::action::EXPORT,
        Some(&p.study_id),
        &[id.to_string()],
        serde_json::json!({
            "format": format.name(),
            "from": from,
            "to": to,
            "timezone": tz.name(),
            "file": args.out.display().to_string(),
        }),
    )
    .await?;
    drop(conn);
    // Written next to the target and renamed at the end, so a failed export never leaves a
    // file that looks complete.
    let mut partial = args.out.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut file = tokio::fs::File::create(&partial)
        .await
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let subject = Subject {
        participant_id: id.clone(),
        provider: p.provider,
        days,
    };
    let mut stream = Box::pin(super::stream(pool.clone(), subject, format));
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(e).context("the export failed");
            }
        };
        bytes += chunk.len() as u64;
        file.write_all(&chunk)
            .await
            .with_context(|| format!("cannot write {}", partial.display()))?;
    }
    file.sync_all().await?;
    tokio::fs::rename(&partial, &args.out)
        .await
        .with_context(|| format!("cannot rename to {}", args.out.display()))?;
    println!(
        "participant {} exported as {} to {} ({bytes} bytes)",
        id.as_str(),
        format.name(),
        args.out.display()
    );
    pool.close().await;
    Ok(())
}
