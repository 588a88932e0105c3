//! Enrolment by coordinators: `POST /participants` adds a participant, `PATCH
//! /participants/{id}` changes their time zone or contact details, and
//! `/participants/{id}/consent-links` creates, lists and revokes the single-use links a
//! participant opens to consent at their provider (the ingest daemon serves the link and the
//! provider's callback). Every change commits with its audit row.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Json, http::Method};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use clap::Args;
use rand::Rng as _;
use serde::{Deserialize, Deserializer, Serialize};
use sqlx::PgPool;
use url::Url;
use utoipa::ToSchema;
use wearhouse_core::ParticipantId;
use wearhouse_core::store::audit;
use wearhouse_core::store::consent_links::{self, Link, NewLink};
use wearhouse_core::store::participants::{self, Addition, DetailsChange};

use super::Routes;
use super::participants::ParticipantView;
use crate::auth::{Access, Caller, Permission};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Path;
use crate::json::JsonBody;

/// Hours a consent link stays usable when the request does not say.
const DEFAULT_LINK_HOURS: u32 = 72;
/// The longest a consent link may stay usable: two weeks.
const MAX_LINK_HOURS: u32 = 336;
/// Letters and digits of generated ids, without those people confuse (0/O, 1/I/L).
const ID_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Characters of a generated id after its study prefix: 31^6, about 10^9 ids per study.
const ID_CODE_LEN: usize = 6;
/// Longest contact name or e-mail accepted.
const MAX_CONTACT_LEN: usize = 200;

/// Settings of consent links.
#[derive(Debug, Clone, Args, Default)]
pub struct EnrolmentArgs {
    /// The address participants reach the stack at, e.g. https://wearhouse.example.org: consent
    /// links are `<this>/consent/<token>`. Default: the scheme and host the request came
    /// through (nginx's `X-Forwarded-Proto` and `X-Forwarded-Host`, else `Host`).
    #[arg(long, env = "WEARHOUSE_PUBLIC_URL")]
    pub public_url: Option<Url>,
}

/// The configured public address, shared with the handlers.
#[derive(Debug, Clone, Default)]
pub struct PublicUrl(pub Option<Url>);

impl PublicUrl {
    /// The base of consent links for a request with these headers, without a trailing slash.
    pub fn base(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        if let Some(url) = &self.0 {
            return Ok(url.as_str().trim_end_matches('/').to_owned());
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let host = header("x-forwarded-host")
            .or_else(|| header("host"))
            .ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!(
                    "no WEARHOUSE_PUBLIC_URL and no Host header to build a consent link from"
                ))
            })?;
        let scheme = match header("x-forwarded-proto") {
            Some("https") => "https",
            _ => "http",
        };
        let base = format!("{scheme}://{host}");
        Url::parse(&base).map_err(|_| ApiError::invalid("Host", "is not a host name"))?;
        Ok(base)
    }
}

/// Routes of this resource.
pub fn routes() -> Routes {
    let manage = Access::Needs(Permission::ManageParticipants);
    Routes::new()
        .method(Method::POST, "/participants", manage, create)
        .method(Method::PATCH, "/participants/{id}", manage, change)
        .route(
            "/participants/{id}/consent-links",
            manage,
            axum::routing::get(links).post(create_link),
        )
        .route(
            "/participants/{id}/consent-links/{link_id}",
            manage,
            axum::routing::delete(revoke_link),
        )
}

/// A participant to add.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewParticipantBody {
    /// The id; absent: a pseudonymous one is generated from the study (e.g. `DEMO-7KX4QP`).
    #[schema(example = "P042")]
    pub participant_id: Option<String>,
    /// One of the caller's studies.
    #[schema(example = "demo")]
    pub study_id: String,
    /// IANA time zone of the participant.
    #[schema(example = "Europe/London")]
    pub timezone: String,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    /// First local day (`YYYY-MM-DD`) to fetch once they consent, for history from before
    /// enrolment; absent: the ingest's default, else the enrolment day.
    #[schema(example = "2026-01-01")]
    pub backfill_from: Option<String>,
}

/// A change to a participant; absent fields stay, `null` clears a contact detail.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ParticipantChangeBody {
    #[schema(example = "Europe/Berlin")]
    pub timezone: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub contact_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub contact_email: Option<Option<String>>,
    /// First local day (`YYYY-MM-DD`) the ingest fetches, for history from before enrolment;
    /// `null` returns to the default. An earlier start than before makes the next load fetch
    /// the earlier days.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "2026-01-01")]
    pub backfill_from: Option<Option<String>>,
}

/// A field that is present, even as `null` (absent stays `None` through `default`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A consent link to create.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewLinkBody {
    /// `fitbit` or `google-health`.
    #[schema(example = "fitbit")]
    pub provider: String,
    /// The coordinator confirmed that a provider account other than the one on record may
    /// replace it (default false: such a consent is refused).
    #[serde(default)]
    pub allow_account_change: bool,
    /// Hours until the link expires, 1 to 336 (default 72).
    #[schema(example = 72, minimum = 1, maximum = 336)]
    pub expires_in_hours: Option<u32>,
}

/// A consent link as listed (its token is never shown again).
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkView {
    pub link_id: i64,
    pub participant_id: String,
    #[schema(example = "fitbit")]
    pub provider: String,
    /// `open`, `used`, `revoked` or `expired`.
    #[schema(example = "open")]
    pub state: String,
    pub allow_account_change: bool,
    pub created_at: DateTime<Utc>,
    /// The user who created it.
    pub created_by: Option<i64>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<Link> for LinkView {
    fn from(l: Link) -> Self {
        LinkView {
            state: l.state(Utc::now()).as_str().to_owned(),
            link_id: l.link_id,
            participant_id: l.participant_id,
            provider: l.provider,
            allow_account_change: l.allow_account_change,
            created_at: l.created_at,
            created_by: l.created_by,
            expires_at: l.expires_at,
            used_at: l.used_at,
            revoked_at: l.revoked_at,
        }
    }
}

/// A new consent link with its URL: the only time the URL is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedLink {
    #[serde(flatten)]
    pub link: LinkView,
    /// What the participant opens: `<public URL>/consent/<token>`.
    #[schema(example = "https://wearhouse.example.org/consent/3q2-7x…")]
    pub url: String,
}

/// The participant's consent links, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkList {
    pub links: Vec<LinkView>,
}

fn parse_id(raw: &str, parameter: &'static str) -> Result<ParticipantId, ApiError> {
    ParticipantId::parse(raw).map_err(|e| match e {
        wearhouse_core::Error::Invalid { message, .. } => ApiError::invalid(parameter, message),
        other => other.into(),
    })
}

fn parse_timezone(raw: &str) -> Result<chrono_tz::Tz, ApiError> {
    raw.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        ApiError::invalid(
            "timezone",
            format!("{raw:?} is not an IANA time zone such as Europe/London"),
        )
    })
}

/// A backfill start: a day, not in the future (`None`: back to the default).
fn parse_backfill(raw: Option<String>) -> Result<Option<NaiveDate>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    let day = wearhouse_core::time::parse_day("backfill_from", &raw)?;
    participants::check_backfill_start(day, Utc::now().date_naive())
        .map_err(|e| ApiError::invalid("backfill_from", e))?;
    Ok(Some(day))
}

/// A contact detail trimmed, empty as absent, bounded; an e-mail must look like one.
fn contact(
    raw: Option<String>,
    parameter: &'static str,
    email: bool,
) -> Result<Option<String>, ApiError> {
    let Some(v) = raw.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > MAX_CONTACT_LEN {
        return Err(ApiError::invalid(
            parameter,
            format!("longer than {MAX_CONTACT_LEN} characters"),
        ));
    }
    if email {
        let looks_like_one = v.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !v.chars().any(char::is_whitespace)
        });
        if !looks_like_one {
            return Err(ApiError::invalid(
                parameter,
                format!("{v:?} is not an e-mail address"),
            ));
        }
    }
    Ok(Some(v))
}

/// A pseudonymous id for a participant of `study`: the study's letters and digits (at most 8,
/// upper case) and a random code without ambiguous characters, e.g. `DEMO-7KX4QP`.
pub fn generated_id(study: &str) -> ParticipantId {
    let prefix: String = study
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect::<String>()
        .to_ascii_uppercase();
    let prefix = if prefix.is_empty() {
        "P".into()
    } else {
        prefix
    };
    let mut rng = rand::thread_rng();
    let code: String = (0..ID_CODE_LEN)
        .map(|_| ID_ALPHABET[rng.gen_range(0..ID_ALPHABET.len())] as char)
        .collect();
    ParticipantId::parse(&format!("{prefix}-{code}")).expect("letters, digits and '-'")
}

/// Adds a participant to one of the caller's studies; they are `invited` until they consent
/// through a consent link.
#[utoipa::path(post, path = "/participants", tag = "participants",
    request_body = NewParticipantBody,
    responses(
        (status = 201, description = "The participant was added", body = ParticipantView),
        (status = 400, description = "A field is invalid", body = ErrorBody),
        (status = 403, description = "The role may not add participants", body = ErrorBody),
        (status = 409, description = "The participant id exists", body = ErrorBody)))]
pub async fn create(
    State(pool): State<PgPool>,
    caller: Caller,
    JsonBody(body): JsonBody<NewParticipantBody>,
) -> Result<(StatusCode, Json<ParticipantView>), ApiError> {
    let study = body.study_id.trim().to_owned();
    if !caller.studies.contains(&study) {
        return Err(ApiError::invalid(
            "study_id",
            format!("{study:?} is not one of your studies"),
        ));
    }
    let timezone = parse_timezone(&body.timezone)?;
    let given = match body.participant_id.as_deref().map(str::trim) {
        Some(raw) if !raw.is_empty() => Some(parse_id(raw, "participant_id")?),
        _ => None,
    };
    let contact_name = contact(body.contact_name, "contact_name", false)?;
    let contact_email = contact(body.contact_email, "contact_email", true)?;
    let backfill = parse_backfill(body.backfill_from)?;
    // A generated id that is taken (about one in a billion) is drawn again.
    let attempts = if given.is_some() { 1 } else { 5 };
    for _ in 0..attempts {
        let id = given.clone().unwrap_or_else(|| generated_id(&study));
        let mut tx = pool.begin().await?;
        let added = participants::add(
            &mut tx,
            &Addition {
                participant_id: id.clone(),
                study_id: study.clone(),
                timezone,
                contact_name: contact_name.clone(),
                contact_email: contact_email.clone(),
            },
        )
        .await?;
        let Some(mut p) = added else { continue };
        if backfill.is_some() {
            p = participants::set_backfill(&mut tx, &id, backfill)
                .await?
                .participant;
        }
        caller
            .audit(
                &mut tx,
                audit::action::PARTICIPANT_CHANGED,
                Some(&study),
                &[id.to_string()],
                audit::outcome::OK,
                serde_json::json!({
                    "change": "created",
                    "timezone": timezone.name(),
                    "generated_id": given.is_none(),
                    "contact_details": contact_name.is_some() || contact_email.is_some(),
                    "backfill_from": backfill,
                }),
            )
            .await?;
        tx.commit().await?;
        return Ok((
            StatusCode::CREATED,
            Json(ParticipantView::new(p, Default::default(), &caller)),
        ));
    }
    Err(ApiError::Conflict(match given {
        Some(id) => format!("participant {id} exists"),
        None => "no free participant id was found; try again".into(),
    }))
}

/// The participant, if the caller may see them (404 otherwise), with their study. Checked on
/// a connection of its own, outside the change's transaction, so that the audit row of a
/// refusal stays.
async fn visible(
    pool: &PgPool,
    caller: &Caller,
    id: &ParticipantId,
    action: &str,
) -> Result<(participants::Participant, String), ApiError> {
    let mut conn = pool.acquire().await?;
    caller.visible(&mut conn, action, &[id.as_str()]).await?;
    let p = participants::get(&mut conn, id).await?;
    let study = p.study_id.clone();
    Ok((p, study))
}

/// Changes a participant's time zone or contact details.
#[utoipa::path(patch, path = "/participants/{id}", tag = "participants",
    params(("id" = String, Path, description = "Participant id", example = "P001",
        min_length = 1, max_length = 64)),
    request_body = ParticipantChangeBody,
    responses(
        (status = 200, description = "The participant as changed", body = ParticipantView),
        (status = 400, description = "A field is invalid", body = ErrorBody),
        (status = 404, description = "No such participant", body = ErrorBody)))]
pub async fn change(
    State(pool): State<PgPool>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ParticipantChangeBody>,
) -> Result<Json<ParticipantView>, ApiError> {
    let id = parse_id(&id, "id")?;
    let timezone = body.timezone.as_deref().map(parse_timezone).transpose()?;
    let change = DetailsChange {
        timezone,
        contact_name: body
            .contact_name
            .map(|v| contact(v, "contact_name", false))
            .transpose()?,
        contact_email: body
            .contact_email
            .map(|v| contact(v, "contact_email", true))
            .transpose()?,
    };
    let backfill = body.backfill_from.map(parse_backfill).transpose()?;
    let (_, study) = visible(&pool, &caller, &id, audit::action::PARTICIPANT_CHANGED).await?;
    let mut tx = pool.begin().await?;
    let mut p = participants::change_details(&mut tx, &id, &change).await?;
    let mut watermarks_moved = 0;
    if let Some(from) = backfill {
        let changed = participants::set_backfill(&mut tx, &id, from).await?;
        (p, watermarks_moved) = (changed.participant, changed.watermarks_moved);
    }
    caller
        .audit(
            &mut tx,
            audit::action::PARTICIPANT_CHANGED,
            Some(&study),
            &[id.to_string()],
            audit::outcome::OK,
            serde_json::json!({
                "change": "details",
                "timezone": timezone.map(|t| t.name()),
                "contact_name": change.contact_name.is_some(),
                "contact_email": change.contact_email.is_some(),
                "backfill_from": backfill,
                "watermarks_moved": watermarks_moved,
            }),
        )
        .await?;
    tx.commit().await?;
    let last = {
        let mut conn = pool.acquire().await?;
        participants::last_samples(&mut conn, id.as_str()).await?
    };
    Ok(Json(ParticipantView::new(p, last, &caller)))
}

/// Creates a consent link for the participant. The answer holds the link's URL, which is
/// shown this once: send it to the participant, who needs no wearhouse account.
#[utoipa::path(post, path = "/participants/{id}/consent-links", tag = "participants",
    params(("id" = String, Path, description = "Participant id", example = "P001",
        min_length = 1, max_length = 64)),
    request_body = NewLinkBody,
    responses(
        (status = 201, description = "The link, with its URL", body = CreatedLink),
        (status = 400, description = "A field is invalid", body = ErrorBody),
        (status = 404, description = "No such participant", body = ErrorBody),
        (status = 409, description = "The participant is withdrawn", body = ErrorBody)))]
pub async fn create_link(
    State(pool): State<PgPool>,
    State(public): State<PublicUrl>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<NewLinkBody>,
) -> Result<(StatusCode, Json<CreatedLink>), ApiError> {
    let id = parse_id(&id, "id")?;
    let provider = body.provider.trim();
    if !consent_links::PROVIDERS.contains(&provider) {
        return Err(ApiError::invalid(
            "provider",
            format!(
                "{provider:?} is not one of {}",
                consent_links::PROVIDERS.join(", ")
            ),
        ));
    }
    let hours = body.expires_in_hours.unwrap_or(DEFAULT_LINK_HOURS);
    if !(1..=MAX_LINK_HOURS).contains(&hours) {
        return Err(ApiError::invalid(
            "expires_in_hours",
            format!("{hours} is outside 1 to {MAX_LINK_HOURS}"),
        ));
    }
    let base = public.base(&headers)?;
    let (p, study) = visible(&pool, &caller, &id, audit::action::PARTICIPANT_CHANGED).await?;
    if p.status == "withdrawn" {
        return Err(ApiError::Conflict(format!(
            "participant {id} is withdrawn; a withdrawn participant cannot consent again"
        )));
    }
    let mut tx = pool.begin().await?;
    let (link, token) = consent_links::create(
        &mut tx,
        &NewLink {
            participant_id: id.as_str(),
            provider,
            created_by: Some(caller.user_id),
            expires_at: Utc::now() + Duration::hours(hours.into()),
            allow_account_change: body.allow_account_change,
        },
    )
    .await?;
    caller
        .audit(
            &mut tx,
            audit::action::PARTICIPANT_CHANGED,
            Some(&study),
            &[id.to_string()],
            audit::outcome::OK,
            serde_json::json!({
                "change": "consent_link_created",
                "link_id": link.link_id,
                "provider": provider,
                "expires_at": link.expires_at,
                "allow_account_change": link.allow_account_change,
            }),
        )
        .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedLink {
            url: format!("{base}/consent/{token}"),
            link: link.into(),
        }),
    ))
}

/// The participant's consent links, newest first, without their URLs.
#[utoipa::path(get, path = "/participants/{id}/consent-links", tag = "participants",
    params(("id" = String, Path, description = "Participant id", example = "P001",
        min_length = 1, max_length = 64)),
    responses(
        (status = 200, description = "The links", body = LinkList),
        (status = 400, description = "The id is invalid", body = ErrorBody),
        (status = 404, description = "No such participant", body = ErrorBody)))]
pub async fn links(
    State(pool): State<PgPool>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<LinkList>, ApiError> {
    let id = parse_id(&id, "id")?;
    let (_, study) = visible(&pool, &caller, &id, audit::action::READ_PARTICIPANT).await?;
    let mut conn = pool.acquire().await?;
    caller
        .audit(
            &mut conn,
            audit::action::READ_PARTICIPANT,
            Some(&study),
            &[id.to_string()],
            audit::outcome::OK,
            serde_json::json!({"consent_links": true}),
        )
        .await?;
    let links = consent_links::list(&mut conn, id.as_str()).await?;
    Ok(Json(LinkList {
        links: links.into_iter().map(LinkView::from).collect(),
    }))
}

/// Revokes an unused consent link (revoking a revoked one changes nothing).
#[utoipa::path(delete, path = "/participants/{id}/consent-links/{link_id}", tag = "participants",
    params(("id" = String, Path, description = "Participant id", example = "P001",
        min_length = 1, max_length = 64),
           ("link_id" = i64, Path, description = "The link's id")),
    responses(
        (status = 200, description = "The link, revoked", body = LinkView),
        (status = 400, description = "The id or the link id is invalid", body = ErrorBody),
        (status = 404, description = "No such participant or link", body = ErrorBody),
        (status = 409, description = "The link was used already", body = ErrorBody)))]
pub async fn revoke_link(
    State(pool): State<PgPool>,
    caller: Caller,
    Path((id, link_id)): Path<(String, String)>,
) -> Result<Json<LinkView>, ApiError> {
    let id = parse_id(&id, "id")?;
    let link_id: i64 = link_id
        .parse()
        .map_err(|_| ApiError::invalid("link_id", format!("{link_id:?} is not a link id")))?;
    let (_, study) = visible(&pool, &caller, &id, audit::action::PARTICIPANT_CHANGED).await?;
    let mut tx = pool.begin().await?;
    let before = consent_links::get(&mut tx, id.as_str(), link_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("participant {id} has no link {link_id}")))?;
    if let Some(used) = before.used_at {
        return Err(ApiError::Conflict(format!(
            "link {link_id} was used at {used}; withdraw the participant to stop collection"
        )));
    }
    if before.revoked_at.is_some() {
        // Revoked already: nothing changes, so nothing is recorded.
        return Ok(Json(before.into()));
    }
    let link = consent_links::revoke(&mut tx, id.as_str(), link_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("participant {id} has no link {link_id}")))?;
    caller
        .audit(
            &mut tx,
            audit::action::PARTICIPANT_CHANGED,
            Some(&study),
            &[id.to_string()],
            audit::outcome::OK,
            serde_json::json!({"change": "consent_link_revoked", "link_id": link_id}),
        )
        .await?;
    tx.commit().await?;
    Ok(Json(link.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_id_carries_the_study_and_no_ambiguous_character() {
        let id = generated_id("trial-2");
        let (prefix, code) = id.as_str().split_once('-').unwrap();
        assert_eq!(prefix, "TRIAL2");
        assert_eq!(code.len(), ID_CODE_LEN);
        assert!(code.bytes().all(|b| ID_ALPHABET.contains(&b)), "{id}");
        assert!(!code.contains(['0', 'O', '1', 'I', 'L']));
        assert_ne!(generated_id("demo"), generated_id("demo"));
    }

    #[test]
    fn the_link_base_follows_the_proxy_unless_configured() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "10.0.0.5:8000".parse().unwrap());
        assert_eq!(
            PublicUrl(None).base(&headers).unwrap(),
            "http://10.0.0.5:8000"
        );
        headers.insert("x-forwarded-host", "study.example.org".parse().unwrap());
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        assert_eq!(
            PublicUrl(None).base(&headers).unwrap(),
            "https://study.example.org"
        );
        let configured = PublicUrl(Some("https://w.example.org/".parse().unwrap()));
        assert_eq!(configured.base(&headers).unwrap(), "https://w.example.org");
    }
}
