//! `wearhouse-ingest participant set-backfill`: the first local day the ingest fetches for one
//! participant, for history from before enrolment. A start earlier than the one in force
//! moves the participant's watermarks back, so the next load fetches the earlier days; a start
//! before the provider account existed is kept but clamped by the load, and this command says
//! so at once.

use chrono::NaiveDate;
use clap::Args;
use wearhouse_core::ParticipantId;
use wearhouse_core::config::DatabaseArgs;
use wearhouse_core::store::audit;
use wearhouse_core::store::participants::{self, BackfillChange};

/// Settings of `wearhouse-ingest participant set-backfill`.
#[derive(Debug, Clone, Args)]
pub struct SetBackfillArgs {
    /// The participant.
    #[arg(long)]
    pub participant: String,

    /// First local day (in the participant's time zone) to fetch, e.g. months before
    /// enrolment.
    #[arg(long, value_name = "YYYY-MM-DD", required_unless_present = "clear")]
    pub from: Option<NaiveDate>,

    /// Forget the participant's own start: the ingest's `--backfill-from`, else the enrolment
    /// day, applies again.
    #[arg(long, conflicts_with = "from")]
    pub clear: bool,

    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// What the coordinator should know about a start that was set.
pub fn describe(change: &BackfillChange) -> String {
    let p = &change.participant;
    let mut out = match p.backfill_from {
        Some(d) => format!("participant {} is loaded from {d}", p.participant_id),
        None => format!(
            "participant {} is loaded from the ingest's default start (else the enrolment day)",
            p.participant_id
        ),
    };
    if let (Some(from), Some(since)) = (p.backfill_from, p.provider_account_since)
        && from < since
    {
        out.push_str(&format!(
            "; the {} account was created on {since}, so the load starts there",
            p.provider.as_deref().unwrap_or("provider")
        ));
    }
    if change.watermarks_moved > 0 {
        out.push_str(&format!(
            "; {} metric watermark(s) moved back, the next run fetches the earlier days",
            change.watermarks_moved
        ));
    }
    out.push('\n');
    out
}

/// Runs the command; returns what to print.
pub async fn run(args: &SetBackfillArgs) -> anyhow::Result<String> {
    let id = ParticipantId::parse(&args.participant)
        .map_err(|e| anyhow::anyhow!("invalid --participant {:?}: {e}", args.participant))?;
    let from = if args.clear { None } else { args.from };
    if let Some(from) = from {
        participants::check_backfill_start(from, chrono::Utc::now().date_naive())
            .map_err(|e| anyhow::anyhow!("--from: {e}"))?;
    }
    let pool =
        args.database.connect().await.map_err(|e| {
            anyhow::anyhow!("cannot connect to the database ({e}); check DATABASE_URL")
        })?;
    let mut conn = pool.acquire().await?;
    let change = match participants::set_backfill(&mut conn, &id, from).await {
        Ok(c) => c,
        Err(wearhouse_core::Error::NotFound { .. }) => {
            anyhow::bail!("there is no participant {}", id.as_str())
        }
        Err(e) => return Err(e.into()),
    };
    audit::append_cli(
        &mut *conn,
        audit::action::PARTICIPANT_CHANGED,
        Some(&change.participant.study_id),
        &[id.to_string()],
        serde_json::json!({
            "change": "backfill_from",
            "backfill_from": from,
            "watermarks_moved": change.watermarks_moved,
        }),
    )
    .await?;
    drop(conn);
    pool.close().await;
    Ok(describe(&change))
}
