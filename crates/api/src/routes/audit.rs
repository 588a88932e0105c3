//! `GET /audit` (admins): the audit trail, newest first, filtered by actor, participant,
//! action and time; JSON pages, or CSV when the client accepts `text/csv`. Reading it is
//! itself recorded.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use wearhouse_core::store::audit::{self, Filter, Row};
use wearhouse_core::time::parse_instant;

use crate::auth::{Access, Caller, Permission};
use crate::error::{ApiError, ErrorBody};
use crate::params::{FromQuery, Params, QueryParams};
use crate::routes::Routes;

const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 10_000;

/// Routes of this resource.
pub fn routes() -> Routes {
    Routes::new().get("/audit", Access::Needs(Permission::ReadAudit), list)
}

/// Query parameters of `GET /audit`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Rows whose actor contains this text (an e-mail, a token name).
    pub actor: Option<String>,
    /// Rows naming this participant.
    #[param(example = "SYN0001")]
    pub participant_id: Option<String>,
    /// One action, e.g. `read_series`, `export`, `login_failed`.
    pub action: Option<String>,
    /// Rows at or after this instant (RFC 3339).
    #[param(value_type = Option<String>)]
    pub from: Option<DateTime<Utc>>,
    /// Rows before this instant (RFC 3339).
    #[param(value_type = Option<String>)]
    pub to: Option<DateTime<Utc>>,
    /// Rows with a smaller id: the `next_before` of the previous page.
    #[param(minimum = 1)]
    pub before: Option<i64>,
    /// Rows per page, 1 to 10000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 10000)]
    pub limit: i64,
}

impl FromQuery for AuditParams {
    fn from_query(params: &QueryParams) -> Result<Self, ApiError> {
        let text = |name: &str| -> Result<Option<String>, ApiError> {
            Ok(params
                .one(name)?
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned))
        };
        let limit = params.number::<i64>("limit", 1)?.unwrap_or(DEFAULT_LIMIT);
        if limit > MAX_LIMIT {
            return Err(ApiError::invalid(
                "limit",
                format!("{limit} is too large; use at most {MAX_LIMIT}"),
            ));
        }
        Ok(AuditParams {
            actor: text("actor")?,
            participant_id: text("participant_id")?,
            action: text("action")?,
            from: params
                .one("from")?
                .map(|s| parse_instant("from", s))
                .transpose()?,
            to: params
                .one("to")?
                .map(|s| parse_instant("to", s))
                .transpose()?,
            before: params.number::<i64>("before", 1)?,
            limit,
        })
    }
}

/// One page of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Row>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// The audit trail, newest first.
#[utoipa::path(get, path = "/audit", tag = "audit", params(AuditParams),
    responses(
        (status = 200, description = "One page of rows (JSON), or all matching rows up to `limit` as CSV",
         content((AuditPage = "application/json"), (String = "text/csv"))),
        (status = 400, description = "A parameter is invalid", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody)))]
pub async fn list(
    State(pool): State<PgPool>,
    caller: Caller,
    headers: HeaderMap,
    Params(p): Params<AuditParams>,
) -> Result<Response, ApiError> {
    let filter = Filter {
        actor: p.actor,
        participant: p.participant_id,
        action: p.action,
        from: p.from,
        to: p.to,
        before_id: p.before,
        limit: p.limit,
    };
    let mut conn = pool.acquire().await?;
    let rows = audit::list(&mut conn, &filter).await?;
    caller
        .audit(
            &mut conn,
            audit::action::READ_AUDIT,
            None,
            filter.participant.as_slice(),
            audit::outcome::OK,
            serde_json::json!({
                "actor": filter.actor,
                "action": filter.action,
                "from": filter.from,
                "to": filter.to,
                "rows": rows.len(),
            }),
        )
        .await?;
    let csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    if csv {
        return to_csv(&rows);
    }
    let next_before = (rows.len() as i64 == filter.limit)
        .then(|| rows.last().map(|r| r.audit_id))
        .flatten();
    Ok(Json(AuditPage { rows, next_before }).into_response())
}

fn to_csv(rows: &[Row]) -> Result<Response, ApiError> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let internal = |e: csv::Error| ApiError::Internal(e.into());
    out.write_record([
        "audit_id",
        "at",
        "actor_user_id",
        "actor",
        "action",
        "study_id",
        "participant_ids",
        "request_id",
        "client_addr",
        "outcome",
        "detail",
        "hash",
    ])
    .map_err(internal)?;
    for r in rows {
        out.write_record([
            r.audit_id.to_string(),
            r.at.to_rfc3339(),
            r.actor_user_id.map(|u| u.to_string()).unwrap_or_default(),
            r.actor.clone(),
            r.action.clone(),
            r.study_id.clone().unwrap_or_default(),
            r.participant_ids.join(" "),
            r.request_id.clone().unwrap_or_default(),
            r.client_addr.clone().unwrap_or_default(),
            r.outcome.clone(),
            r.detail.to_string(),
            r.hash.clone(),
        ])
        .map_err(internal)?;
    }
    let body = out
        .into_inner()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?;
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    Ok(response)
}
