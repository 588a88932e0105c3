//! `GET /data` (JSON) and `GET /data.csv` (or `/data` with `Accept: text/csv`): one metric of
//! one or more participants over a half-open range, answered from the finest resolution that
//! fits the point budget unless the caller forces one. Keeps the original system's contract
//! (`user_id`, `limit`, `offset`, `total_count`) next to keyset cursors.

mod csv;
mod json;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use wearhouse_core::store::audit;
use wearhouse_core::store::series::{self, MAX_POINTS_LIMIT, Page, Plan, SeriesQuery};
use wearhouse_core::time::parse_instant;
use wearhouse_core::{Metric, ParticipantId, Resolution, TimeRange};

use crate::auth::{Access, Caller, Permission};
use crate::error::{ApiError, ErrorBody};
use crate::params::{FromQuery, QueryParams};
use crate::routes::Routes;

/// Routes of this resource.
pub fn routes() -> Routes {
    Routes::new()
        .get("/data", Access::Needs(Permission::ReadData), data)
        .get("/data.csv", Access::Needs(Permission::Export), data_csv)
}

/// The most participants one request may ask for: every series is read in one statement, so a
/// study-wide read goes in pages of participants.
pub const MAX_PARTICIPANTS_PER_REQUEST: usize = 100;

/// How much one data answer may hold (`wearhouse-api serve` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataLimits {
    /// Most rows one CSV answer streams without `limit`.
    pub csv_max_rows: u64,
}

/// Query parameters of `GET /data` and `GET /data.csv`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DataParams {
    /// Participant id(s): repeat the parameter or separate ids with commas. One series each.
    /// Required (it may be spelled `user_id` instead). An id is 1 to 64 ASCII letters, digits,
    /// `-`, `_` or `.`, starting with a letter or digit. At most 100 per request.
    #[param(required = true, value_type = Vec<String>, min_items = 1, max_items = 100, min_length = 1, example = "P001")]
    pub participant_id: Vec<ParticipantId>,
    /// Alias of `participant_id`, as the original system spelled it: accepted in its place.
    #[param(value_type = Option<Vec<String>>, min_length = 1)]
    pub user_id: Vec<ParticipantId>,
    /// Metric name from `/metrics-catalog`.
    #[param(value_type = String, example = "heart_rate")]
    pub metric: Metric,
    /// Start, included: ISO 8601 date (midnight UTC) or date-time with offset.
    #[param(value_type = String, example = "2025-06-01")]
    pub start_date: DateTime<Utc>,
    /// End, excluded: ISO 8601 date (midnight UTC) or date-time with offset.
    #[param(value_type = String, example = "2025-06-08")]
    pub end_date: DateTime<Utc>,
    /// `auto` (default: the finest of raw, 1m, 1h, 1d that fits `max_points`), or force one.
    #[param(value_type = Option<String>, example = "auto")]
    pub resolution: Option<Resolution>,
    /// Point budget per series for `auto`, 1 to 20000 (default 2000).
    #[param(minimum = 1, maximum = 20000)]
    pub max_points: Option<u32>,
    /// Rows per page, 1 to 20000. Without it a JSON answer holds at most `max_points` points
    /// per series and pages on with `next_cursor`; a CSV export holds every row.
    #[param(minimum = 1, maximum = 20000)]
    pub limit: Option<u32>,
    /// Rows to skip (the original system's paging; prefer `cursor`).
    #[param(value_type = Option<u64>, minimum = 0, maximum = 9223372036854775807_u64)]
    pub offset: u64,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl FromQuery for DataParams {
    fn from_query(params: &QueryParams) -> Result<Self, ApiError> {
        let ids = |name: &str| -> Result<Vec<ParticipantId>, ApiError> {
            let mut ids = Vec::new();
            for raw in params.all(name) {
                for id in raw.split(',').filter(|s| !s.trim().is_empty()) {
                    ids.push(ParticipantId::parse(id).map_err(|e| rename(e, name))?);
                }
            }
            Ok(ids)
        };
        let participant_id = ids("participant_id")?;
        let user_id = ids("user_id")?;
        if participant_id.is_empty() && user_id.is_empty() {
            return Err(ApiError::invalid(
                "participant_id",
                "is required (participant_id or user_id; repeat or separate with commas)",
            ));
        }
        let asked = participant_id.len() + user_id.len();
        if asked > MAX_PARTICIPANTS_PER_REQUEST {
            let name = if participant_id.is_empty() {
                "user_id"
            } else {
                "participant_id"
            };
            return Err(ApiError::invalid(
                name,
                format!(
                    "names {asked} participants; at most {MAX_PARTICIPANTS_PER_REQUEST} per \
                     request (ask for the rest in further requests)"
                ),
            ));
        }
        let metric = Metric::parse(params.required("metric")?)?;
        let start_date = parse_instant("start_date", params.required("start_date")?)?;
        let end_date = parse_instant("end_date", params.required("end_date")?)?;
        // Checked here so that a reversed range is reported before the other parameters.
        TimeRange::new(start_date, end_date)?;
        let resolution = match params.one("resolution")? {
            None | Some("auto") => None,
            Some(r) => Some(Resolution::parse(r)?),
        };
        let max_points = params.number::<u32>("max_points", 1)?;
        let limit = params.number::<u32>("limit", 1)?;
        let offset = params.number::<u64>("offset", 0)?.unwrap_or(0);
        if offset > i64::MAX as u64 {
            return Err(ApiError::invalid("offset", "is too large"));
        }
        let cursor = params.one("cursor")?.map(str::to_owned);
        Ok(DataParams {
            participant_id,
            user_id,
            metric,
            start_date,
            end_date,
            resolution,
            max_points,
            limit,
            offset,
            cursor,
        })
    }
}

/// A request, parsed and validated.
pub(crate) struct DataRequest {
    plan: Plan,
    /// Whether the caller set `limit` (a CSV export without it streams every row).
    explicit_limit: bool,
}

impl DataRequest {
    /// Parses the query. `implicit_limit` pages a request that gave no `limit`.
    fn parse(params: &QueryParams, implicit_limit: bool) -> Result<Self, ApiError> {
        let DataParams {
            participant_id,
            user_id,
            metric,
            start_date,
            end_date,
            resolution,
            max_points,
            limit,
            offset,
            cursor,
        } = DataParams::from_query(params)?;
        let mut participants = participant_id;
        participants.extend(user_id);
        let range = TimeRange::new(start_date, end_date)?;
        let explicit_limit = limit.is_some();
        let limit = match limit {
            Some(l) => Some(l),
            // One budget per series, within the largest page the reader serves.
            None if implicit_limit => Some(
                max_points
                    .unwrap_or(series::DEFAULT_MAX_POINTS)
                    .saturating_mul(u32::try_from(participants.len()).unwrap_or(u32::MAX))
                    .min(MAX_POINTS_LIMIT),
            ),
            None => None,
        };
        let plan = Plan::new(SeriesQuery {
            participants,
            metric,
            range,
            max_points,
            resolution,
            page: Page {
                limit,
                offset,
                cursor,
            },
        })?;
        Ok(DataRequest {
            plan,
            explicit_limit,
        })
    }

    /// 404 unless every requested participant exists.
    /// Refuses participants outside the caller's studies (as unknown ones) and records the
    /// read in the audit trail before any row is read.
    async fn authorize(
        &self,
        conn: &mut sqlx::PgConnection,
        caller: &Caller,
        action: &str,
    ) -> Result<(), ApiError> {
        let study = self.visible(conn, caller, action).await?;
        self.record(conn, caller, action, study.as_deref(), audit::outcome::OK)
            .await
    }

    /// The study the participants share, or 404 when one is unknown or outside the
    /// caller's studies.
    async fn visible(
        &self,
        conn: &mut sqlx::PgConnection,
        caller: &Caller,
        action: &str,
    ) -> Result<Option<String>, ApiError> {
        caller.visible(conn, action, &self.participant_ids()).await
    }

    /// Appends the read to the audit trail with `outcome`.
    async fn record(
        &self,
        conn: &mut sqlx::PgConnection,
        caller: &Caller,
        action: &str,
        study: Option<&str>,
        outcome: &str,
    ) -> Result<(), ApiError> {
        let plan = &self.plan;
        let ids: Vec<String> = self
            .participant_ids()
            .iter()
            .map(|s| s.to_string())
            .collect();
        caller
            .audit(
                conn,
                action,
                study,
                &ids,
                outcome,
                serde_json::json!({
                    "metric": plan.metric.name(),
                    "start": plan.range.start,
                    "end": plan.range.end,
                    "resolution": plan.routing.resolution.name(),
                }),
            )
            .await
    }

    fn participant_ids(&self) -> Vec<&str> {
        self.plan
            .participants
            .iter()
            .map(ParticipantId::as_str)
            .collect()
    }
}

/// A participant-id error names the parameter the caller used (`user_id` or `participant_id`).
fn rename(e: wearhouse_core::Error, parameter: &str) -> ApiError {
    match e {
        wearhouse_core::Error::Invalid { message, .. } => ApiError::invalid(parameter, message),
        other => other.into(),
    }
}

/// One page of a series.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataResponse {
    #[schema(example = "heart_rate")]
    pub metric: &'static str,
    #[schema(example = "bpm")]
    pub unit: &'static str,
    /// Start of the range (included).
    pub start_date: DateTime<Utc>,
    /// End of the range (excluded).
    pub end_date: DateTime<Utc>,
    /// The resolution the points are at: `raw`, `1m`, `1h` or `1d`.
    #[schema(example = "1m")]
    pub resolution: &'static str,
    /// Why that resolution.
    pub resolution_reason: String,
    pub max_points: u32,
    /// Rows in the whole result, across participants and pages.
    pub total_count: i64,
    /// Rows per page this answer used.
    pub limit: Option<u32>,
    pub offset: u64,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// One series per requested participant, ordered by participant id.
    #[schema(value_type = Vec<SeriesDoc>)]
    pub series: Vec<series::Series>,
}

/// The points of one participant.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Schema of wearhouse_core's Series, which is what is serialised.
pub struct SeriesDoc {
    participant_id: String,
    points: Vec<PointDoc>,
}

/// One point. At `raw`, `value` is the sample (min = max = sum = value, count 1, `text` the
/// label of categorical metrics); at a rollup, `value` is the bucket average.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Schema of wearhouse_core's Point, which is what is serialised.
pub struct PointDoc {
    /// Sample time, or the start of the bucket.
    timestamp: DateTime<Utc>,
    value: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    sum: Option<f64>,
    /// Samples in the bucket.
    count: i64,
    text: Option<String>,
}

/// A series as JSON, or as CSV when the client accepts `text/csv` and not JSON.
#[utoipa::path(get, path = "/data", tag = "data", params(DataParams),
    responses(
        (status = 200, description = "One page of the series",
         content(
            (DataResponse = "application/json"),
            (String = "text/csv", example = "participant_id,timestamp,value,min,max,sum,count,text\n")
         )),
        (status = 400, description = "A parameter is invalid; `parameter` names it", body = ErrorBody),
        (status = 404, description = "A participant does not exist", body = ErrorBody),
        (status = 429, description = "Too many data reads; `Retry-After` says when to try again", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody)))]
pub async fn data(
    State(pool): State<PgPool>,
    State(limits): State<DataLimits>,
    caller: Caller,
    headers: HeaderMap,
    params: QueryParams,
) -> Result<Response, ApiError> {
    if wants_csv(&headers) {
        if !caller.may(Permission::Export) {
            return Err(ApiError::Forbidden);
        }
        return csv::export(&pool, limits, &caller, &params).await;
    }
    let request = DataRequest::parse(&params, true)?;
    let mut conn = pool.acquire().await?;
    request
        .authorize(&mut conn, &caller, audit::action::READ_SERIES)
        .await?;
    let page = series::read(&mut conn, &request.plan).await?;
    drop(conn);
    let plan = &request.plan;
    let info = plan.metric.info();
    let body = DataResponse {
        metric: info.name,
        unit: info.unit,
        start_date: plan.range.start,
        end_date: plan.range.end,
        resolution: page.routing.resolution.name(),
        resolution_reason: page.routing.reason,
        max_points: page.max_points,
        total_count: page.total_count,
        limit: plan.page.limit,
        offset: plan.page.offset,
        next_cursor: page.next_cursor,
        series: page.series,
    };
    let buf = json::to_vec(&body).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], buf).into_response())
}

/// The series as CSV, streamed row by row from the database.
#[utoipa::path(get, path = "/data.csv", tag = "data", params(DataParams),
    responses(
        (status = 200, description = "The rows as CSV with a header row",
         body = String, content_type = "text/csv"),
        (status = 400, description = "A parameter is invalid, or the rows exceed what one CSV answer streams; `parameter` names it", body = ErrorBody),
        (status = 404, description = "A participant does not exist", body = ErrorBody),
        (status = 429, description = "Too many data reads; `Retry-After` says when to try again", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody)))]
pub async fn data_csv(
    State(pool): State<PgPool>,
    State(limits): State<DataLimits>,
    caller: Caller,
    params: QueryParams,
) -> Result<Response, ApiError> {
    csv::export(&pool, limits, &caller, &params).await
}

/// Whether the client asked for CSV rather than JSON.
fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .find(|m| m == "text/csv" || m == "application/json")
        .is_some_and(|m| m == "text/csv")
}
