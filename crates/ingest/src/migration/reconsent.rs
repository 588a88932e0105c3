//! Who still has to consent again, and why, as a table or JSON (`reconsent-list`): active
//! participants still on the retired Fitbit Web API (they must move to Google Health), those
//! whose grant is broken (revoked, `invalid_grant`: `needs_reconsent`), and those who did not
//! grant a scope a collected metric needs (the metric is skipped until they do).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use serde::Serialize;
use sqlx::PgConnection;
use wearhouse_core::config::DatabaseArgs;
use wearhouse_core::store::{collection, moves};

use crate::sources::fitbit::PROVIDER as FITBIT;

/// The reason shown for participants still on Fitbit.
pub const FITBIT_RETIRED: &str = "enrolled with the retired Fitbit Web API; must consent with Google Health (enroll --provider google-health)";

/// Why a participant must consent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconsentKind {
    /// Still on the retired Fitbit Web API: consent with Google Health.
    MoveToGoogleHealth,
    /// The grant was revoked or refused: nothing is loaded until they consent again.
    GrantBroken,
    /// A scope a collected metric needs was not granted: that metric is skipped.
    ScopeNotGranted,
}

impl ReconsentKind {
    /// How the table names the kind.
    pub fn label(self) -> &'static str {
        match self {
            ReconsentKind::MoveToGoogleHealth => "must move to Google Health",
            ReconsentKind::GrantBroken => "grant broken",
            ReconsentKind::ScopeNotGranted => "scope not granted",
        }
    }
}

/// One reason a participant must consent again (a participant may have several).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconsentEntry {
    pub participant_id: String,
    /// The provider the participant is on now.
    pub provider: Option<String>,
    pub provider_user_id: Option<String>,
    pub kind: ReconsentKind,
    /// The scope not granted (kind `scope_not_granted`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// In words: the provider's answer, or the metrics skipped for the scope.
    pub reason: String,
    /// Since when.
    pub since: DateTime<Utc>,
}

/// Every active participant who must consent again, ordered by id, then kind.
pub async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<ReconsentEntry>> {
    let mut entries: Vec<ReconsentEntry> =
        moves::needing_reconsent(&mut *conn, FITBIT, FITBIT_RETIRED)
            .await?
            .into_iter()
            .map(|e| ReconsentEntry {
                // The query gives the retired provider's reason only to participants whose grant
                // is not broken: a broken Fitbit grant needs a consent either way.
                kind: if e.reason == FITBIT_RETIRED {
                    ReconsentKind::MoveToGoogleHealth
                } else {
                    ReconsentKind::GrantBroken
                },
                participant_id: e.participant_id,
                provider: e.provider,
                provider_user_id: e.provider_user_id,
                scope: None,
                reason: e.reason,
                since: e.since,
            })
            .collect();
    let scopes = collection::scopes_not_granted(&mut *conn).await?;
    entries.extend(scopes.into_iter().map(|g| ReconsentEntry {
        participant_id: g.participant_id,
        provider: g.provider,
        provider_user_id: g.provider_user_id,
        kind: ReconsentKind::ScopeNotGranted,
        reason: format!(
            "scope not granted: {} (skipped: {})",
            g.scope,
            g.metrics.join(", ")
        ),
        scope: Some(g.scope),
        since: g.since,
    }));
    entries.sort_by(|a, b| (&a.participant_id, a.kind).cmp(&(&b.participant_id, b.kind)));
    Ok(entries)
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
        "why",
        "reason",
    ];
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            [
                e.participant_id.clone(),
                e.provider.clone().unwrap_or_else(|| "-".into()),
                e.provider_user_id.clone().unwrap_or_else(|| "-".into()),
                e.since.format("%Y-%m-%d %H:%M").to_string(),
                e.kind.label().to_owned(),
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
    let mut line = |cells: [&str; 6]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 5 {
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
        line([&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]]);
    }
    let mut participants: Vec<&str> = entries.iter().map(|e| e.participant_id.as_str()).collect();
    participants.dedup();
    let _ = writeln!(
        out,
        "{} participant(s) must consent again",
        participants.len()
    );
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
