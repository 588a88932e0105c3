//! Adherence: wear, steps and main sleep per participant and local day, and the per-participant
//! summary with the inactivity, low-wear and poor-sleep-data flags. The figures live in the
//! database (`adherence_days`, views `participant_adherence_daily` and `participant_adherence`,
//! thresholds in `adherence_settings`; see the migration); this module keeps the days current
//! after a load and reads the summary.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{FromRow, PgConnection};

use crate::error::Result;
use crate::participant::ParticipantId;
use crate::time::TimeRange;

/// Recomputes the local days that data in `range` touches (for one participant, or all), and
/// returns the number of day rows written. Call it after a write, with the write's changed span.
pub async fn refresh(
    conn: &mut PgConnection,
    range: TimeRange,
    participant: Option<&ParticipantId>,
) -> Result<u64> {
    let written = sqlx::query_scalar!(
        r#"select refresh_adherence($1, $2, $3) as "written!""#,
        range.start,
        range.end,
        participant.map(|p| p.as_str())
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(u64::try_from(written).unwrap_or(0))
}

/// One participant's adherence summary (a row of the `participant_adherence` view).
#[derive(Debug, Clone, PartialEq, Serialize, FromRow)]
pub struct AdherenceSummary {
    pub participant_id: String,
    /// The participant's current local date; the windows end the day before.
    pub local_today: NaiveDate,
    /// Days with at least the configured wear minutes among the last 7 complete local days.
    pub valid_days_7d: i32,
    /// The same among the last 30.
    pub valid_days_30d: i32,
    /// Nights with a main sleep among the last 7 days.
    pub nights_with_main_sleep_7d: i32,
    /// Share of those nights' sleep minutes with heart-rate data; `None` without sleep.
    pub sleep_hr_coverage_7d: Option<f64>,
    /// The latest local day with any data.
    pub last_data_day: Option<NaiveDate>,
    pub days_since_last_data: Option<i32>,
    pub last_device_sync: Option<DateTime<Utc>>,
    pub flag_inactivity: bool,
    pub flag_low_wear: bool,
    pub flag_poor_sleep: bool,
}

/// The summaries of `ids` (all participants when empty), ordered by participant id.
pub async fn summaries(
    conn: &mut PgConnection,
    ids: &[ParticipantId],
) -> Result<Vec<AdherenceSummary>> {
    let ids: Vec<&str> = ids.iter().map(|p| p.as_str()).collect();
    // A view: PostgreSQL reports every column as nullable, so the non-null ones say so.
    Ok(sqlx::query_as!(
        AdherenceSummary,
        r#"select participant_id as "participant_id!", local_today as "local_today!",
                  valid_days_7d as "valid_days_7d!", valid_days_30d as "valid_days_30d!",
                  nights_with_main_sleep_7d as "nights_with_main_sleep_7d!",
                  sleep_hr_coverage_7d, last_data_day, days_since_last_data, last_device_sync,
                  flag_inactivity as "flag_inactivity!", flag_low_wear as "flag_low_wear!",
                  flag_poor_sleep as "flag_poor_sleep!"
           from participant_adherence
           where cardinality($1::text[]) = 0 or participant_id = any($1)
           order by participant_id"#,
        &ids as &[&str]
    )
    .fetch_all(&mut *conn)
    .await?)
}
