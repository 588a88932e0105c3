//! Who may do what, decided in one place. Every route is registered with an [`Access`]
//! (`routes::Routes` will not take one without); one middleware, [`guard`], runs after routing
//! for every route, authenticates the caller (session cookie or `Authorization: Bearer`
//! token), checks the role against [`permits`], the permission matrix, and hands the handler a
//! [`Caller`]. The handler then limits what it reads to the caller's studies through
//! [`Caller::visible`] and records the access with [`Caller::audit`].

pub mod check;
pub mod login;
pub mod password;
pub mod settings;
pub mod sso;
pub mod throttle;

use std::sync::Arc;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sqlx::{PgConnection, PgPool};
use wearhouse_core::store::audit::{self, Actor, Entry};
use wearhouse_core::store::credentials::{self, SessionLimits};
use wearhouse_core::store::users::{self, Role};
use wearhouse_core::store::{participants, studies};

use crate::client::ClientInfo;
use crate::error::ApiError;
use crate::oidc::{Oidc, OidcArgs};
use crate::routes::AccessRules;
pub use settings::AuthArgs;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "wearhouse_session";

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, readiness, the API description, signing in.
    Public,
    /// Any signed-in user (who they are, the metric catalogue, signing out).
    SignedIn,
    /// A signed-in user whose role has this permission.
    Needs(Permission),
}

/// What a role may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// The participants of their studies: status, provider, last data (no contact details).
    ReadParticipants,
    /// Participants' contact details.
    ReadContactDetails,
    /// Series of their studies' participants, and imputation results.
    ReadData,
    /// Series as CSV downloads, and a participant's data in standard formats (FHIR, Open
    /// mHealth).
    Export,
    /// Queue imputation jobs.
    RunImputation,
    /// Send a contact request through the form.
    SendContact,
    /// Read the audit trail.
    ReadAudit,
    /// Prometheus metrics (also open to the scrape token).
    ReadMetrics,
    /// Add participants to their studies, edit their details and create consent links.
    ManageParticipants,
    /// Withdraw a participant: collection stops, the data collected so far stays.
    WithdrawParticipants,
    /// One participant's whole record as an archive (data portability, subject access).
    ExportParticipants,
    /// Erase a participant's data everywhere (irreversible).
    EraseParticipants,
    /// The Grafana dashboards, through the web server's sign-in check.
    ViewDashboards,
    /// Prometheus and AlertManager, through the web server's sign-in check.
    ViewOperations,
}

impl Permission {
    pub const ALL: [Permission; 14] = [
        Permission::ReadParticipants,
        Permission::ReadContactDetails,
        Permission::ReadData,
        Permission::Export,
        Permission::RunImputation,
        Permission::SendContact,
        Permission::ReadAudit,
        Permission::ReadMetrics,
        Permission::ManageParticipants,
        Permission::WithdrawParticipants,
        Permission::ExportParticipants,
        Permission::EraseParticipants,
        Permission::ViewDashboards,
        Permission::ViewOperations,
    ];
}

/// The permission matrix (written out in the README's "Roles" table).
pub fn permits(role: Role, permission: Permission) -> bool {
    use Permission::*;
    match role {
        Role::Admin => true,
        Role::Coordinator => matches!(
            permission,
            ReadParticipants | ReadContactDetails | ManageParticipants | WithdrawParticipants
        ),
        Role::Researcher => matches!(
            permission,
            ReadParticipants | ReadData | Export | RunImputation | SendContact | ViewDashboards
        ),
        Role::Analyst => matches!(permission, ReadParticipants | ReadData | ViewDashboards),
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Session,
    Token {
        name: String,
    },
    /// Prometheus' scrape token (metrics only; not a user).
    ScrapeToken,
}

/// The signed-in caller of a request, as the guard established them.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: i64,
    pub email: String,
    pub role: Role,
    /// The studies granted to the user (for an admin: every study).
    pub studies: Vec<String>,
    pub via: Via,
    pub client: ClientInfo,
}

impl Caller {
    /// The studies to limit a listing to; `None` for an admin, who sees all.
    pub fn study_filter(&self) -> Option<&[String]> {
        (self.role != Role::Admin).then_some(self.studies.as_slice())
    }

    /// Whether the caller's role has the permission.
    pub fn may(&self, permission: Permission) -> bool {
        permits(self.role, permission)
    }

    /// The actor an audit row names.
    pub fn actor(&self) -> Actor {
        let label = match &self.via {
            Via::Token { name } => format!("token {name} of {}", self.email),
            Via::Session => self.email.clone(),
            Via::ScrapeToken => "metrics scrape token".into(),
        };
        Actor {
            user_id: (self.via != Via::ScrapeToken).then_some(self.user_id),
            label,
        }
    }

    /// Checks that every one of `ids` is a participant in the caller's studies. A participant
    /// of another study is answered exactly like one that does not exist (404), so that
    /// existence does not leak across studies; the refusal is audited. Returns the study of
    /// the participants when they all share one.
    pub async fn visible(
        &self,
        conn: &mut PgConnection,
        action: &str,
        ids: &[&str],
    ) -> Result<Option<String>, ApiError> {
        let found = participants::studies_of(conn, ids).await?;
        let hidden: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| {
                found
                    .get(*id)
                    .is_none_or(|study| self.study_filter().is_some_and(|s| !s.contains(study)))
            })
            .collect();
        if hidden.is_empty() {
            let mut studies = found.values();
            let first = studies.next().cloned();
            return Ok(first.filter(|f| studies.all(|s| s == f)));
        }
        let refused: Vec<String> = hidden
            .iter()
            .filter(|id| found.contains_key(**id))
            .map(|id| id.to_string())
            .collect();
        if !refused.is_empty() {
            self.audit(
                &mut *conn,
                action,
                None,
                &refused,
                audit::outcome::DENIED,
                serde_json::json!({"reason": "participant outside the caller's studies"}),
            )
            .await?;
        }
        Err(ApiError::NotFound(format!(
            "unknown participant(s): {}",
            hidden.join(", ")
        )))
    }

    /// Appends an audit row for this caller and request.
    pub async fn audit(
        &self,
        conn: &mut PgConnection,
        action: &str,
        study: Option<&str>,
        participant_ids: &[String],
        outcome: &str,
        detail: serde_json::Value,
    ) -> Result<(), ApiError> {
        let actor = self.actor();
        audit::append(
            &mut *conn,
            &Entry {
                actor: &actor,
                action,
                study_id: study,
                participant_ids,
                request_id: self.client.request_id.as_deref(),
                client_addr: Some(&self.client.addr.to_string()),
                outcome,
                detail,
            },
        )
        .await?;
        Ok(())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "a handler asked for the caller on a public route"
            ))
        })
    }
}

/// What the guard needs: the pool, the access rule of every route, the session limits and
/// the scrape token's hash.
pub struct Auth {
    pub pool: PgPool,
    pub access: AccessRules,
    pub limits: SessionLimits,
    pub scrape_token_hash: Option<Vec<u8>>,
    pub settings: AuthArgs,
    pub throttle: throttle::LoginThrottle,
    /// The per-user pace of data reads.
    pub reads: throttle::ReadThrottle,
    /// Single sign-on, when configured, and the signer of its pending-sign-in cookie.
    pub oidc: Option<Oidc>,
    pub pending_signer: Option<sso::PendingSigner>,
}

impl Auth {
    /// The guard's state from the routes' access rules and the settings; reads the scrape
    /// token's file.
    pub fn new(
        pool: PgPool,
        access: AccessRules,
        settings: &AuthArgs,
        oidc: Option<(Oidc, &OidcArgs)>,
    ) -> anyhow::Result<Self> {
        let pending_signer = match &oidc {
            Some((_, args)) => sso::PendingSigner::new(args)?,
            None => None,
        };
        let scrape_token_hash = match &settings.metrics_token_file {
            Some(path) => {
                let token = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot read the metrics token file {}: {e}; check WEARHOUSE_METRICS_TOKEN_FILE",
                        path.display()
                    )
                })?;
                let token = token.trim();
                if token.len() < 16 {
                    anyhow::bail!(
                        "the metrics token in {} is shorter than 16 characters",
                        path.display()
                    );
                }
                Some(credentials::hash(token))
            }
            None => None,
        };
        Ok(Auth {
            pool,
            access,
            limits: SessionLimits {
                idle: chrono::Duration::minutes(settings.session_idle_minutes.max(1).into()),
                lifetime: chrono::Duration::hours(settings.session_lifetime_hours.max(1).into()),
            },
            scrape_token_hash,
            throttle: throttle::LoginThrottle::new(
                settings.login_account_burst,
                settings.login_client_burst,
            ),
            reads: throttle::ReadThrottle::new(settings.read_burst, settings.read_per_minute),
            settings: settings.clone(),
            oidc: oidc.map(|(o, _)| o),
            pending_signer,
        })
    }

    /// The single-sign-on provider's name, when one is configured.
    pub fn oidc_name(&self) -> Option<&str> {
        self.oidc.as_ref().map(Oidc::display_name)
    }
}

/// The middleware that decides, for every routed request, whether it may go on.
pub async fn guard(State(auth): State<Arc<Auth>>, mut request: Request, next: Next) -> Response {
    let Some(route) = request.extensions().get::<MatchedPath>() else {
        return next.run(request).await;
    };
    let Some(access) = auth.access.of(request.method(), route.as_str()) else {
        // Unreachable through `Routes`; refuse rather than serve an unguarded route.
        tracing::error!(route = route.as_str(), "route without an access rule");
        return ApiError::Forbidden.into_response();
    };
    if access == Access::Public {
        return next.run(request).await;
    }
    let client = ClientInfo::of(&request);
    let caller = match authenticate(&auth, request.headers(), access, client).await {
        Ok(Some(caller)) => caller,
        Ok(None) => return ApiError::Unauthenticated.into_response(),
        Err(e) => return e.into_response(),
    };
    if let Access::Needs(permission) = access
        && caller.via != Via::ScrapeToken
        && !caller.may(permission)
    {
        return ApiError::Forbidden.into_response();
    }
    // Reads of participants' data are paced per user, so one runaway script cannot hold the
    // database for everyone else.
    if let Access::Needs(permission) = access
        && throttle::is_data_read(permission)
        && let Some(wait) = auth.reads.take(caller.user_id)
    {
        return ApiError::RateLimited {
            retry_after_secs: wait.as_secs().max(1),
        }
        .into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The caller of a request, if its credentials are good.
async fn authenticate(
    auth: &Auth,
    headers: &axum::http::HeaderMap,
    access: Access,
    client: ClientInfo,
) -> Result<Option<Caller>, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or(v.strip_prefix("bearer ")))
        .map(str::trim);
    if let (Some(token), Some(expected), Access::Needs(Permission::ReadMetrics)) =
        (bearer, &auth.scrape_token_hash, access)
        && credentials::hash(token) == *expected
    {
        return Ok(Some(Caller {
            user_id: 0,
            email: String::new(),
            role: Role::Analyst,
            studies: Vec::new(),
            via: Via::ScrapeToken,
            client,
        }));
    }
    let mut conn = auth.pool.acquire().await?;
    let (user_id, via) = if let Some(token) = bearer {
        match credentials::resolve_token(&mut conn, token).await? {
            Some((user, name)) => (user, Via::Token { name }),
            None => return Ok(None),
        }
    } else if let Some(secret) = session_cookie(headers) {
        match credentials::resume_session(&mut conn, &secret, auth.limits).await? {
            Some(user) => (user, Via::Session),
            None => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    let user = users::get(&mut conn, user_id).await?;
    let studies = if user.role == Role::Admin {
        studies::ids(&mut conn).await?
    } else {
        user.studies
    };
    Ok(Some(Caller {
        user_id,
        email: user.email,
        role: user.role,
        studies,
        via,
        client,
    }))
}

/// The session secret from the request's cookies.
pub fn session_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE && !c.value().is_empty())
        .map(|c| c.value().to_owned())
}
