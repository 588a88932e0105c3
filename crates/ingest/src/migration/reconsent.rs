//! Who still has to consent again: active participants still on the retired Fitbit Web API
//! (not yet moved to Google Health), and participants whose grant was revoked or refused
//! (`needs_reconsent`), each with the reason, as a table or JSON (`reconsent-list`).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use serde::Serialize;
use sqlx::{FromRow, PgConnection};
use wearhouse_core::config::DatabaseArgs;

/// The reason shown for participants still on Fitbit.
pub const FITBIT_RETIRED: &str = "enrolled with the retired Fitbit Web API; must consent with Google Health (enroll --provider google-health)";

/// One participant who must consent again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct ReconsentEntry {
    pub participant_id: String,
    /// The provider the participant is on now.
    pub provider: Option<String>,
    pub provider_user_id: Option<String>,
    pub reason: String,
    /// When the participant row last changed (the flag was set, or the enrolment).
    pub since: DateTime<Utc>,
}

/// Every active participant who must consent again, ordered by id.
pub async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<ReconsentEntry>> {
    sqlx::query_as(
        "select participant_id, provider, provider_user_id,
                case when needs_reconsent then coalesce(reconsent_reason, 'grant revoked or invalid')
                     else $1 end as reason,
                updated_at as since
         from participants
         where status = 'active' and (needs_reconsent or provider = 'fitbit')
         order by participant_id",
    )
    .bind(FITBIT_RETIRED)
    .fetch_all(conn)
    .await
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
