//! Who still has to consent again: active participants still on the retired Fitbit Web API
//! (not yet moved to Google Health), and participants whose grant was revoked or refused
//! (`needs_reconsent`), each with the reason, as a table or JSON (`reconsent-list`).

use std::fmt::Write as _;

use clap::{Args, ValueEnum};
use sqlx::PgConnection;
use wearhouse_core::config::DatabaseArgs;
use wearhouse_core::store::moves;

use crate::sources::fitbit::PROVIDER as FITBIT;

/// The reason shown for participants still on Fitbit.
pub const FITBIT_RETIRED: &str = "enrolled with the retired Fitbit Web API; must consent with Google Health (enroll --provider google-health)";

pub use wearhouse_core::store::moves::ReconsentEntry;

/// Every active participant who must consent again, ordered by id.
pub async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<ReconsentEntry>> {
    moves::needing_reconsent(conn, FITBIT, FITBIT_RETIRED).await
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// A JSON array for scripts.
    Json,
}

/// Settings of `wearhouse-ingest reconsent-list`.
#[derive(Debug, Clone, Args)]
pub struct ReconsentListArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Output format.
    #[arg(long, env = "WEARHOUSE_RECONSENT_FORMAT", value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// The entries as an aligned table with a count line.
pub fn table(entries: &[ReconsentEntry]) -> String {
    let header = [
        "participant",
        "provider",
        "provider user",
        "since",
        "reason",
    ];
    let rows: Vec<[String; 5]> = entries
        .iter()
        .map(|e| {
            [
                e.participant_id.clone(),
                e.provider.clone().unwrap_or_else(|| "-".into()),
                e.provider_user_id.clone().unwrap_or_else(|| "-".into()),
                e.since.format("%Y-%m-%d %H:%M").to_string(),
                e.reason.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 5]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 4 {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    let _ = writeln!(out, "{} participant(s) must consent again", entries.len());
    out
}

/// Runs `reconsent-list`: prints the list in the chosen format.
pub async fn run(args: &ReconsentListArgs) -> anyhow::Result<String> {
    let pool = args.database.connect().await?;
    let mut conn = pool.acquire().await?;
    let entries = list(&mut conn).await?;
    drop(conn);
    pool.close().await;
    Ok(match args.format {
        Format::Table => table(&entries),
        Format::Json => serde_json::to_string_pretty(&entries)? + "\n",
    })
}
