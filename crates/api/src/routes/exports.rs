//! `GET /export/fhir` (a FHIR R4 Bundle) and `GET /export/omh` (Open mHealth data points, a
//! JSON array or NDJSON with `Accept: application/x-ndjson`): one participant over a range of
//! their local days, streamed. Guarded like the CSV export: the roles that may export, the
//! caller's studies only, and every export recorded in the audit trail before its first byte.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use chrono_tz::Tz;
use sqlx::PgPool;
use utoipa::IntoParams;
use wearhouse_core::ParticipantId;
use wearhouse_core::store::observations::LocalDays;
use wearhouse_core::store::{audit, participants};
use wearhouse_core::time::parse_day;

use crate::auth::{Access, Caller, Permission};
use crate::error::{ApiError, ErrorBody};
use crate::exports::{self, Format, Subject};
use crate::params::{FromQuery, QueryParams};
use crate::routes::Routes;

/// Routes of this resource.
pub fn routes() -> Routes {
    Routes::new()
        .get("/export/fhir", Access::Needs(Permission::Export), fhir)
        .get("/export/omh", Access::Needs(Permission::Export), omh)
}

/// Query parameters of `GET /export/fhir` and `GET /export/omh`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// The participant (1 to 64 ASCII letters, digits, `-`, `_` or `.`).
    #[param(value_type = String, min_length = 1, max_length = 64, example = "P001")]
    pub participant_id: ParticipantId,
    /// First local day exported (in the participant's time zone), `YYYY-MM-DD`.
    #[param(value_type = String, format = Date, example = "2025-06-01")]
    pub from: NaiveDate,
    /// First local day not exported (the range is half-open), `YYYY-MM-DD`; at most 3660 days
    /// after `from`.
    #[param(value_type = String, format = Date, example = "2025-06-08")]
    pub to: NaiveDate,
}

impl FromQuery for ExportParams {
    fn from_query(params: &QueryParams) -> Result<Self, ApiError> {
        let raw = params.required("participant_id")?;
        let participant_id = ParticipantId::parse(raw).map_err(|e| match e {
            wearhouse_core::Error::Invalid { message, .. } => {
                ApiError::invalid("participant_id", message)
            }
            other => other.into(),
        })?;
        let from = parse_day("from", params.required("from")?)?;
        let to = parse_day("to", params.required("to")?)?;
        // The order and length of the range do not depend on the time zone.
        LocalDays::new(from, to, Tz::UTC)?;
        Ok(ExportParams {
            participant_id,
            from,
            to,
        })
    }
}

/// One participant's data as a FHIR R4 `Bundle` (type `collection`) of `Observation`s: heart
/// rate and oxygen saturation samples, steps, resting heart rate and respiratory rate per
/// local day, and sleep durations (LOINC codes, UCUM units; docs/exports.md).
#[utoipa::path(get, path = "/export/fhir", tag = "exports", params(ExportParams),
    responses(
        (status = 200, description = "The Bundle, streamed", body = serde_json::Value,
         content_type = "application/fhir+json"),
        (status = 400, description = "A parameter is invalid; `parameter` names it", body = ErrorBody),
        (status = 404, description = "No such participant", body = ErrorBody),
        (status = 429, description = "Too many data reads; `Retry-After` says when to try again", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody)))]
pub async fn fhir(
    State(pool): State<PgPool>,
    caller: Caller,
    params: QueryParams,
) -> Result<Response, ApiError> {
    export(pool, &caller, &params, Format::Fhir).await
}

/// One participant's data as Open mHealth data points (header and body): heart-rate,
/// oxygen-saturation, step-count, physical-activity, respiratory-rate and sleep-episode. A
/// JSON array, or one data point per line with `Accept: application/x-ndjson`.
#[utoipa::path(get, path = "/export/omh", tag = "exports", params(ExportParams),
    responses(
        (status = 200, description = "The data points, streamed",
         content(
            (Vec<serde_json::Value> = "application/json"),
            (String = "application/x-ndjson")
         )),
        (status = 400, description = "A parameter is invalid; `parameter` names it", body = ErrorBody),
        (status = 404, description = "No such participant", body = ErrorBody),
        (status = 429, description = "Too many data reads; `Retry-After` says when to try again", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody)))]
pub async fn omh(
    State(pool): State<PgPool>,
    caller: Caller,
    headers: HeaderMap,
    params: QueryParams,
) -> Result<Response, ApiError> {
    let format = if wants_ndjson(&headers) {
        Format::OmhNdjson
    } else {
        Format::OmhJson
    };
    export(pool, &caller, &params, format).await
}

/// Checks the parameters and the participant, records the export, then streams it.
async fn export(
    pool: PgPool,
    caller: &Caller,
    params: &QueryParams,
    format: Format,
) -> Result<Response, ApiError> {
    let ExportParams {
        participant_id,
        from,
        to,
    } = ExportParams::from_query(params)?;
    let mut conn = pool.acquire().await?;
    let study = caller
        .visible(&mut conn, audit::action::EXPORT, &[participant_id.as_str()])
        .await?;
    let p = participants::get(&mut conn, &participant_id).await?;
    let tz: Tz = p.timezone.parse().unwrap_or(Tz::UTC);
    let days = LocalDays::new(from, to, tz)?;
    caller
        .audit(
            &mut conn,
            audit::action::EXPORT,
            study.as_deref(),
            &[participant_id.to_string()],
            audit::outcome::OK,
            serde_json::json!({
                "format": format.name(),
                "from": from,
                "to": to,
                "timezone": tz.name(),
            }),
        )
        .await?;
    drop(conn);
    let filename = format!(
        "{}_{}_{from}_{to}.{}",
        participant_id.as_str(),
        format.name(),
        format.extension()
    );
    let subject = Subject {
        participant_id,
        provider: p.provider,
        days,
    };
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(exports::stream(pool, subject, format)),
    )
        .into_response())
}

/// Whether the client asked for NDJSON rather than a JSON array.
fn wants_ndjson(headers: &HeaderMap) -> bool {
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
        .find(|m| m == "application/x-ndjson" || m == "application/json")
        .is_some_and(|m| m == "application/x-ndjson")
}
