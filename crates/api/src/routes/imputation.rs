//! `POST /data/run_imputation` (the original system's endpoint) queues an imputation job;
//! `GET /data/imputation_jobs/{id}` reports its status, summary and model parameters. The
//! impute worker runs the job: it wakes on the NOTIFY the insert sends.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use wearhouse_core::store::audit;
use wearhouse_core::store::imputed::default_range;
use wearhouse_core::store::jobs::{self as store, JobRecord, NewJob};
use wearhouse_core::time::parse_instant;
use wearhouse_core::{Metric, ParticipantId, TimeRange};

use crate::auth::{Access, Caller, Permission};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Path;
use crate::params::{FromQuery, Params, QueryParams};
use crate::routes::Routes;

/// Routes of this resource.
pub fn routes() -> Routes {
    Routes::new()
        .route(
            "/data/run_imputation",
            Access::Needs(Permission::RunImputation),
            post(run_imputation),
        )
        .get(
            "/data/imputation_jobs/{id}",
            Access::Needs(Permission::ReadData),
            job,
        )
}

/// Query parameters of `POST /data/run_imputation`.
/// Exactly one of `user_id` and `participant_id` is given.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunParams {
    /// Participant id, as the original system spelled the parameter: 1 to 64 ASCII letters,
    /// digits, `-`, `_` or `.`, starting with a letter or digit.
    #[param(value_type = Option<String>, example = "P001", min_length = 1, max_length = 64)]
    pub user_id: Option<ParticipantId>,
    /// Alias of `user_id`.
    #[param(value_type = Option<String>, min_length = 1, max_length = 64)]
    pub participant_id: Option<ParticipantId>,
    /// Metric name from `/metrics-catalog`; its catalogue strategy is applied (ARIMA for
    /// heart rate, forward/back fill for steps, …).
    #[param(value_type = String, example = "heart_rate")]
    pub metric: Metric,
    /// Start, included: ISO 8601 date or date-time. Without start and end: the participant's
    /// last 7 days of data of the metric.
    #[param(value_type = Option<String>, example = "2025-06-01")]
    pub start_date: Option<DateTime<Utc>>,
    /// End, excluded: ISO 8601 date or date-time. Give both or neither.
    #[param(value_type = Option<String>, example = "2025-06-08")]
    pub end_date: Option<DateTime<Utc>>,
}

impl RunParams {
    /// The participant, under whichever name it was given.
    pub fn participant(&self) -> &ParticipantId {
        self.user_id
            .as_ref()
            .or(self.participant_id.as_ref())
            .expect("from_query requires one of them")
    }
}

impl FromQuery for RunParams {
    fn from_query(params: &QueryParams) -> Result<Self, ApiError> {
        let (name, raw) = match (params.one("user_id")?, params.one("participant_id")?) {
            (Some(u), None) => ("user_id", u),
            (None, Some(p)) => ("participant_id", p),
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "participant_id",
                    "give user_id or participant_id, not both",
                ));
            }
            (None, None) => {
                return Err(ApiError::invalid(
                    "user_id",
                    "is required (user_id or participant_id)",
                ));
            }
        };
        let participant = ParticipantId::parse(raw).map_err(|e| match e {
            wearhouse_core::Error::Invalid { message, .. } => ApiError::invalid(name, message),
            other => other.into(),
        })?;
        let (user_id, participant_id) = if name == "user_id" {
            (Some(participant), None)
        } else {
            (None, Some(participant))
        };
        let metric = Metric::parse(params.required("metric")?)?;
        let start_date = params
            .one("start_date")?
            .map(|s| parse_instant("start_date", s))
            .transpose()?;
        let end_date = params
            .one("end_date")?
            .map(|s| parse_instant("end_date", s))
            .transpose()?;
        Ok(RunParams {
            user_id,
            participant_id,
            metric,
            start_date,
            end_date,
        })
    }
}

/// The answer to a queued job.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    #[schema(example = "0b6f7c1e-58a4-4d0b-9a3e-6f1e2d3c4b5a")]
    pub job_id: Uuid,
    /// Always `queued`.
    #[schema(example = "queued")]
    pub status: String,
    /// Where to follow the job.
    #[schema(example = "/data/imputation_jobs/0b6f7c1e-58a4-4d0b-9a3e-6f1e2d3c4b5a")]
    pub status_url: String,
}

/// An imputation job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub job_id: Uuid,
    pub participant_id: String,
    #[schema(example = "heart_rate")]
    pub metric: String,
    /// Start of the range (included).
    pub start_date: DateTime<Utc>,
    /// End of the range (excluded).
    pub end_date: DateTime<Utc>,
    /// `queued`, `running`, `succeeded` or `failed`.
    #[schema(example = "succeeded")]
    pub status: String,
    /// `arima`, `forward_back_fill`, `linear` or `none`, once run.
    pub method: Option<String>,
    /// The model: for ARIMA `order` [p, d, q], `coefficients`, `sigma2`, `loglik`, `aic`,
    /// `nobs`; for every method `grid_seconds` and `max_gap_points`.
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
    /// Points observed, gaps, points filled and points left empty (non-wear).
    #[schema(value_type = Option<Object>)]
    pub summary: Option<serde_json::Value>,
    /// Why the job failed.
    pub error: Option<String>,
    /// Times a worker took the job.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<JobRecord> for JobView {
    fn from(j: JobRecord) -> Self {
        JobView {
            job_id: j.id,
            participant_id: j.participant_id,
            metric: j.data_type,
            start_date: j.range_start,
            end_date: j.range_end,
            status: j.status.to_string(),
            method: j.method,
            parameters: j.parameters,
            summary: j.summary,
            error: j.error,
            attempts: j.attempts,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }
    }
}

/// Queue an imputation job.
#[utoipa::path(
    post,
    path = "/data/run_imputation",
    tag = "imputation",
    params(
        RunParams,
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255,
         description = "Makes a retry safe: the same key from the same caller within 24 hours \
                        answers the first answer again (with `Idempotent-Replayed: true`) and \
                        queues nothing new"),
    ),
    responses(
        (status = 202, description = "Queued", body = Queued),
        (status = 400, description = "A parameter is missing, malformed or out of bounds (a range over 92 days); `parameter` names it", body = ErrorBody),
        (status = 404, description = "Unknown participant, or no data to impute", body = ErrorBody),
        (status = 409, description = "The request with this Idempotency-Key is still running", body = ErrorBody),
        (status = 422, description = "The Idempotency-Key was used for a different request", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn run_imputation(
    State(pool): State<PgPool>,
    caller: Caller,
    Params(params): Params<RunParams>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let participant = params.participant().clone();
    let (metric, start, end) = (params.metric, params.start_date, params.end_date);
    let mut conn = pool.acquire().await?;
    let given = match (start, end) {
        (Some(s), Some(e)) => {
            let range = TimeRange::new(s, e)?;
            store::check_range(&range, "end_date")?;
            Some(range)
        }
        (Some(_), None) => return Err(ApiError::invalid("end_date", "give it with start_date")),
        (None, Some(_)) => return Err(ApiError::invalid("start_date", "give it with end_date")),
        (None, None) => None,
    };
    let study = caller
        .visible(
            &mut conn,
            audit::action::IMPUTATION_REQUESTED,
            &[participant.as_str()],
        )
        .await?;
    let range = match given {
        Some(range) => range,
        None => default_range(&mut conn, &participant, metric)
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "{participant} has no {metric} data to impute; give start_date and end_date"
                ))
            })?,
    };
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let job = store::queue(
        &mut tx,
        &NewJob {
            participant: participant.clone(),
            metric,
            range,
        },
    )
    .await?;
    caller
        .audit(
            &mut tx,
            audit::action::IMPUTATION_REQUESTED,
            study.as_deref(),
            &[participant.to_string()],
            audit::outcome::OK,
            serde_json::json!({
                "job_id": job.id,
                "metric": metric.name(),
                "start": range.start,
                "end": range.end,
            }),
        )
        .await?;
    tx.commit().await?;
    tracing::info!(job_id = %job.id, "imputation job queued");
    Ok((
        StatusCode::ACCEPTED,
        Json(Queued {
            job_id: job.id,
            status: job.status.to_string(),
            status_url: format!("/data/imputation_jobs/{}", job.id),
        }),
    ))
}

/// An imputation job's status, summary and model parameters.
#[utoipa::path(
    get,
    path = "/data/imputation_jobs/{id}",
    tag = "imputation",
    params(("id" = Uuid, Path, description = "Job id from `POST /data/run_imputation`")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 429, description = "Too many data reads; `Retry-After` says when to try again", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    )
)]
pub async fn job(
    State(pool): State<PgPool>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let id = Uuid::parse_str(id.trim())
        .map_err(|_| ApiError::invalid("id", format!("{id:?} is not a job id (a UUID)")))?;
    let mut conn = pool.acquire().await?;
    let not_found = || ApiError::NotFound(format!("no imputation job {id}"));
    let job = store::get(&mut conn, id).await?.ok_or_else(not_found)?;
    // A job of another study's participant is answered as one that does not exist.
    let study = caller
        .visible(
            &mut conn,
            audit::action::READ_IMPUTATION,
            &[job.participant_id.as_str()],
        )
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => not_found(),
            e => e,
        })?;
    caller
        .audit(
            &mut conn,
            audit::action::READ_IMPUTATION,
            study.as_deref(),
            std::slice::from_ref(&job.participant_id),
            audit::outcome::OK,
            serde_json::json!({"job_id": id}),
        )
        .await?;
    Ok(Json(job.into()))
}
