//! A participant's lifecycle: `POST /participants/{id}/withdraw` (collection stops, the data
//! stays; the ingest revokes the grant at the provider, which the API cannot reach and whose
//! tokens its role may not read), `POST /participants/{id}/erase` (every row naming the
//! participant goes, with a typed confirmation) and `GET /participants/{id}/export` (the
//! participant's whole record as a zip archive, streamed).

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use wearhouse_core::ParticipantId;
use wearhouse_core::store::lifecycle::{self, action, export};
use wearhouse_core::store::{self, audit};

use crate::auth::{Access, Caller, Permission};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{self, Path};
use crate::json::JsonBytes;
use crate::routes::Routes;

/// Longest withdrawal reason kept.
const MAX_REASON_CHARS: usize = 1_000;

/// Routes of this resource.
pub fn routes() -> Routes {
    Routes::new()
        .route(
            "/participants/{id}/withdraw",
            Access::Needs(Permission::WithdrawParticipants),
            post(withdraw),
        )
        .route(
            "/participants/{id}/erase",
            Access::Needs(Permission::EraseParticipants),
            post(erase),
        )
        .get(
            "/participants/{id}/export",
            Access::Needs(Permission::ExportParticipants),
            export_archive,
        )
}

fn participant(id: &str) -> Result<ParticipantId, ApiError> {
    ParticipantId::parse(id).map_err(|e| match e {
        wearhouse_core::Error::Invalid { message, .. } => ApiError::invalid("id", message),
        other => other.into(),
    })
}

/// A JSON object body's string field, or a 400 naming it.
fn string_field(body: &Bytes, field: &str) -> Result<String, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            field,
            format!("the body must be a JSON object with {field:?}: {e}"),
        )
    })?;
    if let Some(path) = crate::json::nul_at(&value) {
        return Err(ApiError::invalid(path, extract::NUL_MESSAGE));
    }
    match value.get(field) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Some(serde_json::Value::String(_)) | None | Some(serde_json::Value::Null) => {
            Err(ApiError::invalid(field, "is required"))
        }
        Some(_) => Err(ApiError::invalid(field, "must be a string")),
    }
}

/// A participant's withdrawal.
#[derive(Debug, Serialize, ToSchema)]
pub struct WithdrawalView {
    #[schema(example = "P001")]
    pub participant_id: String,
    pub study_id: String,
    /// `withdrawn`.
    pub status: String,
    pub withdrawn_at: Option<DateTime<Utc>>,
    pub withdrawal_reason: Option<String>,
    /// Who withdrew the participant, as the audit trail names them.
    pub withdrawn_by: Option<String>,
    /// True while the grant at the provider is still to be revoked: the ingest does it within
    /// about a minute (`wearhouse-ingest participant withdraw` does it at once).
    pub revocation_pending: bool,
}

/// Withdraw a participant: collection stops at once, the data collected so far stays, the
/// grant at the provider is revoked by the ingest. Withdrawing again answers the first
/// withdrawal unchanged.
#[utoipa::path(post, path = "/participants/{id}/withdraw", tag = "participants",
    params(("id" = String, Path, description = "Participant id", example = "P001",
        min_length = 1, max_length = 64)),
    request_body(content = serde_json::Value, description = "`{\"reason\": \"...\"}`"),
    responses(
        (status = 200, description = "The participant is withdrawn", body = WithdrawalView),
        (status = 400, description = "The reason is missing", body = ErrorBody),
        (status = 404, description = "No such participant", body = ErrorBody)))]
pub async fn withdraw(
    State(pool): State<PgPool>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBytes(body): JsonBytes,
) -> Result<Json<WithdrawalView>, ApiError> {
    let id = participant(&id)?;
    let reason = string_field(&body, "reason")?;
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ApiError::invalid(
            "reason",
            format!("is longer than {MAX_REASON_CHARS} characters"),
        ));
    }
    let mut conn = pool.acquire().await?;
    caller
        .visible(&mut conn, action::WITHDRAWN, &[id.as_str()])
        .await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let (w, newly) = lifecycle::withdraw(&mut tx, &id, &reason, &caller.actor().label).await?;
    let pending = lifecycle::grant_pending(&mut *tx, &id).await?;
    caller
        .audit(
            &mut tx,
            action::WITHDRAWN,
            Some(&w.study_id),
            &[id.to_string()],
            audit::outcome::OK,
            serde_json::json!({
                "reason": reason,
                "already_withdrawn": !newly,
                "revocation_pending": pending,
            }),
        )
        .await?;
    tx.commit().await?;
    Ok(Json(WithdrawalView {
        participant_id: w.participant_id,
        study_id: w.study_id,
        status: w.status,
        withdrawn_at: w.withdrawn_at,
        withdrawal_reason: w.withdrawal_reason,
        withdrawn_by: w.withdrawn_by,
        revocation_pending: pending,
    }))
}

/// What an erasure removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureView {
    pub participant_id: String,
    /// Rows deleted per table.
    pub rows: BTreeMap<String, i64>,
}

/// Erase a participant everywhere (irreversible). The body repeats the participant id:
/// `{"confirm": "<id>"}`. Refused while the grant is still to be revoked (withdraw first).
#[utoipa::path(post, path = "/participants/{id}/erase", tag = "participants",
    params(("id" = String, Path, description = "Participant id", example = "P001",
        min_length = 1, max_length = 64)),
    request_body(content = serde_json::Value, description = "`{\"confirm\": \"<id>\"}`"),
    responses(
        (status = 200, description = "The participant is erased", body = ErasureView),
        (status = 400, description = "The confirmation does not match, or a grant is still \
                                      to be revoked", body = ErrorBody),
        (status = 404, description = "No such participant", body = ErrorBody)))]
pub async fn erase(
    State(pool): State<PgPool>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBytes(body): JsonBytes,
) -> Result<Json<ErasureView>, ApiError> {
    let id = participant(&id)?;
    let confirm = string_field(&body, "confirm")?;
    if confirm != id.as_str() {
        return Err(ApiError::invalid(
            "confirm",
            format!(
                "type the participant id {:?} to confirm the erasure",
                id.as_str()
            ),
        ));
    }
    let mut conn = pool.acquire().await?;
    caller
        .visible(&mut conn, action::ERASED, &[id.as_str()])
        .await?;
    let backend = store::detect_backend(&mut conn).await?;
    let actor = caller.actor();
    let addr = caller.client.addr.to_string();
    match lifecycle::erase(
        &pool,
        &backend,
        &id,
        &actor,
        caller.client.request_id.as_deref(),
        Some(&addr),
    )
    .await
    {
        Ok(erased) => Ok(Json(ErasureView {
            participant_id: erased.participant_id,
            rows: erased.rows,
        })),
        Err(e) if e.kind() == wearhouse_core::ErrorKind::InvalidInput => {
            // A refusal is worth its own record; the erasure itself is recorded by the
            // database function in its transaction.
            caller
                .audit(
                    &mut conn,
                    action::ERASE_REFUSED,
                    None,
                    &[id.to_string()],
                    audit::outcome::FAILED,
                    serde_json::json!({"reason": e.to_string()}),
                )
                .await?;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// The participant's whole record as one zip archive: raw samples per metric (CSV, UTC and
/// local time), imputed values with their method, adherence days, the participant record
/// without tokens, and `manifest.json` (units, time zone, row counts, SHA-256 per file).
#[utoipa::path(get, path = "/participants/{id}/export", tag = "participants",
    params(("id" = String, Path, description = "Participant id", example = "P001",
        min_length = 1, max_length = 64)),
    responses(
        (status = 200, description = "The archive", content_type = "application/zip"),
        (status = 400, description = "The id is invalid", body = ErrorBody),
        (status = 404, description = "No such participant", body = ErrorBody),
        (status = 429, description = "Too many data reads; `Retry-After` says when to try again", body = ErrorBody)))]
pub async fn export_archive(
    State(pool): State<PgPool>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = participant(&id)?;
    let mut conn = pool.acquire().await?;
    let study = caller
        .visible(&mut conn, action::EXPORTED, &[id.as_str()])
        .await?;
    caller
        .audit(
            &mut conn,
            action::EXPORTED,
            study.as_deref(),
            &[id.to_string()],
            audit::outcome::OK,
            serde_json::json!({"format": "zip"}),
        )
        .await?;
    drop(conn);
    let filename = format!("{}.zip", id.as_str());
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        Body::from_stream(export::archive(pool, id)),
    )
        .into_response())
}
