//! `GET /participants` and `GET /participants/{id}`: enrolment, provider, re-consent status
//! and the latest sample time of each metric.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use wearhouse_core::ParticipantId;
use wearhouse_core::store::{audit, ingest_state, participants};

use crate::auth::{Access, Caller, Permission};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Path;
use crate::params::{FromQuery, Params, QueryParams};
use crate::routes::Routes;

/// Page size when the caller gives none.
const DEFAULT_LIMIT: u32 = 100;
/// Largest page a caller may ask for.
pub const MAX_LIMIT: u32 = 1_000;

/// Routes of this resource.
pub fn routes() -> Routes {
    Routes::new()
        .get(
            "/participants",
            Access::Needs(Permission::ReadParticipants),
            list,
        )
        .get(
            "/participants/{id}",
            Access::Needs(Permission::ReadParticipants),
            detail,
        )
}

/// A participant as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantView {
    #[schema(example = "P001")]
    pub participant_id: String,
    /// IANA time zone of the participant's device.
    #[schema(example = "Europe/London")]
    pub timezone: String,
    /// `active`, `paused`, `withdrawn` or `completed`.
    #[schema(example = "active")]
    pub status: String,
    /// Where the participant stands in the study's lifecycle: `invited` (added, no consent
    /// yet), `active`, `needs_reconsent` (see `reconsent_reason`), `withdrawn`, or for the
    /// other statuses the status itself (`paused`, `completed`).
    #[schema(example = "active")]
    pub state: String,
    /// Data source, e.g. `fitbit`; null before a device is linked.
    pub provider: Option<String>,
    pub enrolled_at: DateTime<Utc>,
    /// The provider refused our grant: the participant must consent again.
    pub needs_reconsent: bool,
    pub reconsent_reason: Option<String>,
    /// The device's last sync as the provider reported it.
    pub last_device_sync: Option<DateTime<Utc>>,
    /// The latest sample of any metric: the participant's last data.
    pub last_data_at: Option<DateTime<Utc>>,
    /// Latest sample time per metric name; metrics without data are absent.
    #[schema(value_type = BTreeMap<String, DateTime<Utc>>)]
    pub last_sample: BTreeMap<String, DateTime<Utc>>,
    /// The study the participant belongs to.
    #[schema(example = "demo")]
    pub study_id: String,
    /// First local day the ingest fetches for the participant (history from before
    /// enrolment); null: the ingest's default start, else the enrolment day.
    pub backfill_from: Option<NaiveDate>,
    /// Day the provider account was created, as its profile reported at consent: a start
    /// before it is clamped to it.
    pub provider_account_since: Option<NaiveDate>,
    /// Contact details: only for roles that may read them (admin, coordinator); absent for
    /// the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<ContactView>,
}

/// A participant's contact details.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactView {
    pub name: Option<String>,
    pub email: Option<String>,
}

/// The lifecycle state of a participant row (see [`ParticipantView::state`]).
pub fn lifecycle_state(p: &participants::Participant) -> &str {
    match p.status.as_str() {
        "active" if p.provider.is_none() => "invited",
        "active" if p.needs_reconsent => "needs_reconsent",
        other => other,
    }
}

impl ParticipantView {
    /// The view of `p` for `caller` (contact details only for roles that may read them).
    pub fn new(
        p: participants::Participant,
        last_sample: BTreeMap<String, DateTime<Utc>>,
        caller: &Caller,
    ) -> Self {
        let state = lifecycle_state(&p).to_owned();
        let contact = caller
            .may(Permission::ReadContactDetails)
            .then_some(ContactView {
                name: p.contact_name,
                email: p.contact_email,
            });
        let last_data_at = last_sample.values().max().copied();
        ParticipantView {
            state,
            last_data_at,
            study_id: p.study_id,
            contact,
            participant_id: p.participant_id,
            timezone: p.timezone,
            status: p.status,
            provider: p.provider,
            enrolled_at: p.enrolled_at,
            needs_reconsent: p.needs_reconsent,
            reconsent_reason: p.reconsent_reason,
            last_device_sync: p.last_device_sync,
            backfill_from: p.backfill_from,
            provider_account_since: p.provider_account_since,
            last_sample,
        }
    }
}

/// One page of participants.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantList {
    pub participants: Vec<ParticipantView>,
    /// Participants in total, across pages.
    pub total_count: i64,
    pub limit: u32,
    pub offset: u64,
}

/// Query parameters of `GET /participants`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Participants per page, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: u32,
    /// Participants to skip (default 0).
    #[param(value_type = Option<u64>, minimum = 0, maximum = 9223372036854775807_u64)]
    pub offset: u64,
}

impl FromQuery for ListParams {
    fn from_query(params: &QueryParams) -> Result<Self, ApiError> {
        let limit = params.number::<u32>("limit", 1)?.unwrap_or(DEFAULT_LIMIT);
        if limit > MAX_LIMIT {
            return Err(ApiError::invalid(
                "limit",
                format!("{limit} is too large; use at most {MAX_LIMIT}"),
            ));
        }
        let offset = params.number::<u64>("offset", 0)?.unwrap_or(0);
        if offset > i64::MAX as u64 {
            return Err(ApiError::invalid("offset", "is too large"));
        }
        Ok(ListParams { limit, offset })
    }
}

/// Participants ordered by id, one page at a time.
#[utoipa::path(get, path = "/participants", tag = "participants", params(ListParams),
    responses(
        (status = 200, description = "One page of participants", body = ParticipantList),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody)))]
pub async fn list(
    State(pool): State<PgPool>,
    caller: Caller,
    Params(ListParams { limit, offset }): Params<ListParams>,
) -> Result<Json<ParticipantList>, ApiError> {
    let mut conn = pool.acquire().await?;
    let (rows, total_count) =
        participants::list(&mut conn, caller.study_filter(), limit, offset).await?;
    let ids: Vec<&str> = rows.iter().map(|p| p.participant_id.as_str()).collect();
    let mut last = participants::last_samples_of(&mut conn, &ids).await?;
    if !ids.is_empty() {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        caller
            .audit(
                &mut conn,
                audit::action::READ_PARTICIPANTS,
                None,
                &ids,
                audit::outcome::OK,
                serde_json::json!({
                    "limit": limit,
                    "offset": offset,
                    "contact_details": caller.may(Permission::ReadContactDetails),
                }),
            )
            .await?;
    }
    let participants = rows
        .into_iter()
        .map(|p| {
            let l = last.remove(&p.participant_id).unwrap_or_default();
            ParticipantView::new(p, l, &caller)
        })
        .collect();
    Ok(Json(ParticipantList {
        participants,
        total_count,
        limit,
        offset,
    }))
}

/// A participant with the ingest watermarks.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantDetail {
    #[serde(flatten)]
    pub participant: ParticipantView,
    /// Per source and metric, the instant up to which data is known complete.
    pub watermarks: Vec<WatermarkView>,
}

/// One ingest watermark.
#[derive(Debug, Serialize, ToSchema)]
pub struct WatermarkView {
    #[schema(example = "fitbit")]
    pub source: String,
    #[schema(example = "heart_rate")]
    pub metric: String,
    pub watermark: DateTime<Utc>,
    pub last_run_at: Option<DateTime<Utc>>,
    /// The last ingest error for this metric, if the last run failed.
    pub last_error: Option<String>,
}

/// One participant.
#[utoipa::path(get, path = "/participants/{id}", tag = "participants",
    params(("id" = String, Path, description = "Participant id", example = "P001",
        min_length = 1, max_length = 64)),
    responses(
        (status = 200, description = "The participant", body = ParticipantDetail),
        (status = 400, description = "The id is malformed", body = ErrorBody),
        (status = 404, description = "No such participant", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody)))]
pub async fn detail(
    State(pool): State<PgPool>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ParticipantDetail>, ApiError> {
    let id = ParticipantId::parse(&id).map_err(|e| match e {
        wearhouse_core::Error::Invalid { message, .. } => ApiError::invalid("id", message),
        other => other.into(),
    })?;
    let mut conn = pool.acquire().await?;
    let study = caller
        .visible(&mut conn, audit::action::READ_PARTICIPANT, &[id.as_str()])
        .await?;
    caller
        .audit(
            &mut conn,
            audit::action::READ_PARTICIPANT,
            study.as_deref(),
            &[id.to_string()],
            audit::outcome::OK,
            serde_json::json!({
                "contact_details": caller.may(Permission::ReadContactDetails),
            }),
        )
        .await?;
    let p = participants::get(&mut conn, &id).await?;
    let last = participants::last_samples(&mut conn, id.as_str()).await?;
    let watermarks = ingest_state::list(&mut conn, &id)
        .await?
        .into_iter()
        .map(|w| WatermarkView {
            source: w.source,
            metric: w.data_type,
            watermark: w.watermark,
            last_run_at: w.last_run_at,
            last_error: w.last_error,
        })
        .collect();
    Ok(Json(ParticipantDetail {
        participant: ParticipantView::new(p, last, &caller),
        watermarks,
    }))
}
