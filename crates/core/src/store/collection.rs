//! What is collected from whom: the metrics a participant's study collects, the scopes their
//! grant holds, the metrics skipped because a scope was not granted, and how long
//! participants have waited to consent again.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgExecutor;

use crate::error::{Error, Result};
use crate::metric::Metric;
use crate::participant::ParticipantId;

/// What a delta load may fetch for one participant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collection {
    /// The metric names the participant's study collects; `None`: every metric offered.
    pub study_metrics: Option<Vec<String>>,
    /// The scopes of the participant's live grant with the provider, space-separated as the
    /// provider answered them; `None` when there is no grant or the provider did not say.
    pub granted_scope: Option<String>,
}

impl Collection {
    /// Whether the study collects `metric`.
    pub fn study_collects(&self, metric: Metric) -> bool {
        self.study_metrics
            .as_ref()
            .is_none_or(|m| m.iter().any(|n| n == metric.name()))
    }

    /// Whether the stored grant shows that `scope` was not granted. An unknown grant scope
    /// says nothing, so the provider is asked and answers for itself.
    pub fn lacks_scope(&self, scope: &str) -> bool {
        self.granted_scope
            .as_deref()
            .is_some_and(|granted| !granted.split_whitespace().any(|s| s == scope))
    }
}

/// The study's metrics and the grant's scopes for `participant` with `provider`.
pub async fn of(
    db: impl PgExecutor<'_>,
    participant: &ParticipantId,
    provider: &str,
) -> Result<Collection> {
    let row = sqlx::query!(
        r#"select s.metrics as "study_metrics?",
                  (select t.scope from oauth_tokens t
                   where t.participant_id = p.participant_id and t.provider = $2
                     and t.revoked_at is null) as "granted_scope?"
           from participants p join studies s using (study_id)
           where p.participant_id = $1"#,
        participant.as_str(),
        provider
    )
    .fetch_optional(db)
    .await?;
    Ok(row
        .map(|r| Collection {
            study_metrics: r.study_metrics,
            granted_scope: r.granted_scope,
        })
        .unwrap_or_default())
}

/// The metric names study `study` collects; `None`: every metric, or no such study.
pub async fn study_metrics(db: impl PgExecutor<'_>, study: &str) -> Result<Option<Vec<String>>> {
    let metrics: Option<Option<Vec<String>>> =
        sqlx::query_scalar("select metrics from studies where study_id = $1")
            .bind(study)
            .fetch_optional(db)
            .await?;
    Ok(metrics.flatten())
}

/// The metric names the study of `participant` collects; `None`: every metric, or no such
/// participant (yet).
pub async fn participant_study_metrics(
    db: impl PgExecutor<'_>,
    participant: &ParticipantId,
) -> Result<Option<Vec<String>>> {
    let metrics: Option<Option<Vec<String>>> = sqlx::query_scalar(
        "select s.metrics from participants p join studies s using (study_id)
         where p.participant_id = $1",
    )
    .bind(participant.as_str())
    .fetch_optional(db)
    .await?;
    Ok(metrics.flatten())
}

/// Sets the metrics a study collects (`None`: every metric its providers offer). Unknown
/// metric names are refused with the catalogue's names.
pub async fn set_study_metrics(
    db: impl PgExecutor<'_>,
    study: &str,
    metrics: Option<&[Metric]>,
) -> Result<()> {
    let names: Option<Vec<&str>> = metrics.map(|m| m.iter().map(|m| m.name()).collect());
    let done = sqlx::query!(
        "update studies set metrics = $2 where study_id = $1",
        study,
        names.as_deref() as Option<&[&str]>
    )
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::invalid(
            "study",
            format!("there is no study {study:?}"),
        ));
    }
    Ok(())
}

/// Records that `metric` of `source` is skipped for the participant because `scope` was not
/// granted; the first time is kept.
pub async fn note_scope_not_granted(
    db: impl PgExecutor<'_>,
    participant: &ParticipantId,
    source: &str,
    metric: Metric,
    scope: &str,
) -> Result<()> {
    sqlx::query!(
        "insert into scopes_not_granted (participant_id, source, data_type, scope)
         values ($1, $2, $3, $4)
         on conflict (participant_id, source, data_type) do update set scope = excluded.scope",
        participant.as_str(),
        source,
        metric.name(),
        scope
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets the missing scopes of these metrics of `source` (they loaded again, or the study
/// no longer collects them).
pub async fn clear_scopes_not_granted(
    db: impl PgExecutor<'_>,
    participant: &ParticipantId,
    source: &str,
    metrics: &[Metric],
) -> Result<()> {
    let names: Vec<&str> = metrics.iter().map(|m| m.name()).collect();
    sqlx::query!(
        "delete from scopes_not_granted
         where participant_id = $1 and source = $2 and data_type = any($3)",
        participant.as_str(),
        source,
        &names as &[&str]
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A scope an active participant did not grant, with the metrics skipped for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScopeNotGranted {
    pub participant_id: String,
    pub provider: Option<String>,
    pub provider_user_id: Option<String>,
    pub scope: String,
    /// Metric names skipped for the scope, sorted.
    pub metrics: Vec<String>,
    /// When a metric was first skipped for it.
    pub since: DateTime<Utc>,
}

/// Every scope active participants did not grant, by participant and scope.
pub async fn scopes_not_granted(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<ScopeNotGranted>> {
    sqlx::query_as!(
        ScopeNotGranted,
        r#"select g.participant_id, p.provider, p.provider_user_id, g.scope,
                  array_agg(g.data_type order by g.data_type) as "metrics!",
                  min(g.since) as "since!"
           from scopes_not_granted g join participants p using (participant_id)
           where p.status = 'active' and g.source = p.provider
           group by g.participant_id, p.provider, p.provider_user_id, g.scope
           order by g.participant_id, g.scope"#
    )
    .fetch_all(db)
    .await
}

/// Active participants who have needed re-consent for more than `days` days.
pub async fn count_needing_reconsent_longer_than(
    db: impl PgExecutor<'_>,
    days: u32,
) -> Result<i64> {
    Ok(sqlx::query_scalar!(
        r#"select count(*) as "n!" from participants
           where needs_reconsent and status = 'active'
             and reconsent_since < now() - make_interval(days => $1)"#,
        i32::try_from(days).unwrap_or(i32::MAX)
    )
    .fetch_one(db)
    .await?)
}

/// Active participants marked as needing re-consent, by id.
pub async fn needing_reconsent(db: impl PgExecutor<'_>) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar!(
        "select participant_id from participants
         where needs_reconsent and status = 'active' order by participant_id"
    )
    .fetch_all(db)
    .await?)
}
