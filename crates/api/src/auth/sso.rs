//! Single sign-on routes: `GET /auth/oidc/start` sends the browser to the issuer and keeps the
//! pending sign-in in a signed cookie; `GET /auth/oidc/callback` finishes it, finds (or, when
//! the issuer grants roles, creates) the wearhouse user, starts a session and returns the
//! browser to the page it came from.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, SameSite};
use hmac::{Hmac, Mac as _};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use sqlx::PgConnection;
use wearhouse_core::store::studies;
use wearhouse_core::store::users::{self, NewUser, Role, User};

use super::{Access, Auth, login};
use crate::client::ClientInfo;
use crate::error::ApiError;
use crate::extract::Query;
use crate::oidc::{Identity, LOGIN_TIMEOUT, OidcArgs, PendingLogin};
use crate::routes::Routes;

/// The cookie that carries a pending sign-in from the redirect to the callback.
const PENDING_COOKIE: &str = "wearhouse_oidc";

/// Routes of this resource.
pub fn routes() -> Routes {
    Routes::new()
        .get("/auth/oidc/start", Access::Public, start)
        .get("/auth/oidc/callback", Access::Public, callback)
}

/// Signs the pending-sign-in cookie. The key derives from the client secret, so every replica
/// of the API that shares the secret accepts the cookie another one set.
pub struct PendingSigner {
    key: [u8; 32],
}

impl PendingSigner {
    /// The signer for these settings; `None` when single sign-on is off.
    pub fn new(args: &OidcArgs) -> anyhow::Result<Option<Self>> {
        let Some(path) = &args.client_secret_file else {
            return Ok(None);
        };
        let secret = std::fs::read(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the OIDC client secret file {}: {e}; check WEARHOUSE_OIDC_CLIENT_SECRET_FILE",
                path.display()
            )
        })?;
        let mut h = Sha256::new();
        h.update(b"wearhouse pending sign-in cookie\0");
        h.update(&secret);
        Ok(Some(PendingSigner {
            key: h.finalize().into(),
        }))
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length")
    }

    fn seal(&self, pending: &PendingLogin) -> anyhow::Result<String> {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(pending)?);
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        Ok(format!(
            "{body}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        ))
    }

    fn open(&self, sealed: &str) -> Option<PendingLogin> {
        let (body, tag) = sealed.split_once('.')?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(tag).ok()?).ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
    }
}

#[derive(Debug, Deserialize)]
struct StartParams {
    return_to: Option<String>,
}

/// Only a path of this site: no scheme, no host, no `//` (which a browser reads as a host).
fn safe_return_to(raw: Option<&str>) -> String {
    match raw {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control) =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// Sends the browser to the issuer.
async fn start(
    State(auth): State<Arc<Auth>>,
    headers: HeaderMap,
    Query(params): Query<StartParams>,
) -> Result<Response, ApiError> {
    let (Some(oidc), Some(signer)) = (&auth.oidc, &auth.pending_signer) else {
        return Err(ApiError::NotFound(
            "single sign-on is not configured".into(),
        ));
    };
    let (url, pending) = oidc.start(&safe_return_to(params.return_to.as_deref()));
    let sealed = signer.seal(&pending).map_err(ApiError::Internal)?;
    // Lax, not Strict: the issuer's redirect back is a navigation from another site.
    let cookie = Cookie::build((PENDING_COOKIE, sealed))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(login::secure(auth.settings.cookie_secure, &headers))
        .max_age(cookie::time::Duration::seconds(
            LOGIN_TIMEOUT.as_secs() as i64
        ))
        .build();
    redirect(url.as_str(), [cookie])
}

fn redirect<const N: usize>(to: &str, cookies: [Cookie<'static>; N]) -> Result<Response, ApiError> {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(to).map_err(|e| ApiError::Internal(e.into()))?,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Finishes a sign-in at the issuer.
async fn callback(
    State(auth): State<Arc<Auth>>,
    client: ClientInfo,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Result<Response, ApiError> {
    let (Some(oidc), Some(signer)) = (&auth.oidc, &auth.pending_signer) else {
        return Err(ApiError::NotFound(
            "single sign-on is not configured".into(),
        ));
    };
    let pending = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == PENDING_COOKIE)
        .and_then(|c| signer.open(c.value()));
    let mut conn = auth.pool.acquire().await?;
    let Some(pending) = pending else {
        let why = "the sign-in expired or did not start here; start it again";
        return refuse(&mut conn, &client, "single sign-on".into(), why.into()).await;
    };
    if let Some(error) = params.error {
        let why = format!("the identity provider answered {error}");
        return refuse(&mut conn, &client, "single sign-on".into(), why).await;
    }
    let (Some(code), Some(state)) = (params.code, params.state) else {
        return Err(ApiError::invalid(
            "code",
            "the callback needs code and state",
        ));
    };
    let identity = match oidc.finish(&code, &state, &pending).await {
        Ok(identity) => identity,
        Err(e) => {
            let why = format!("the sign-in was refused ({})", e.code());
            return refuse(&mut conn, &client, "single sign-on".into(), why).await;
        }
    };
    let who = identity
        .email
        .clone()
        .unwrap_or_else(|| format!("{} at {}", identity.subject, identity.issuer));
    let user = match user_for(&mut conn, &identity).await? {
        Ok(user) => user,
        Err(why) => return refuse(&mut conn, &client, who, why).await,
    };
    let secret = login::start(&mut conn, &user, &client, "oidc").await?;
    let mut gone = Cookie::build((PENDING_COOKIE, "")).path("/").build();
    gone.make_removal();
    redirect(
        &pending.return_to,
        [login::session_cookie(&auth, &headers, secret), gone],
    )
}

/// Records a refused sign-in and answers it.
async fn refuse(
    conn: &mut PgConnection,
    client: &ClientInfo,
    who: String,
    why: String,
) -> Result<Response, ApiError> {
    let detail = serde_json::json!({"method": "oidc", "reason": why});
    login::record_failure(conn, client, who, detail).await?;
    Err(ApiError::SignInRefused(why))
}

/// The wearhouse user an identity signs in as, or why there is none. Linked by the issuer's
/// subject once known; the first time by a verified e-mail. When the issuer grants roles (the
/// roles claim is configured), the claim decides the role and studies at every sign-in, and a
/// user is created if needed; otherwise they are granted in wearhouse.
async fn user_for(
    conn: &mut PgConnection,
    identity: &Identity,
) -> Result<Result<User, String>, ApiError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let mut user = users::by_sso(&mut tx, &identity.issuer, &identity.subject).await?;
    let verified_email = identity
        .email
        .as_deref()
        .filter(|_| identity.email_verified);
    if user.is_none()
        && let Some(email) = verified_email
        && let Some(found) = users::by_email(&mut tx, email).await?
    {
        if found.sso {
            return Ok(Err(format!(
                "{email} is linked to another single-sign-on identity"
            )));
        }
        users::link_sso(&mut tx, found.user_id, &identity.issuer, &identity.subject).await?;
        user = Some(found);
    }
    if let Some(claimed) = &identity.claimed {
        let Some((role, wanted)) = granted(claimed) else {
            return Ok(Err("the identity provider grants no wearhouse role".into()));
        };
        let known: Vec<String> = studies::list(&mut tx)
            .await?
            .into_iter()
            .map(|s| s.study_id)
            .filter(|s| wanted.contains(s))
            .collect();
        let id = match &user {
            Some(u) => u.user_id,
            None => {
                let Some(email) = verified_email else {
                    return Ok(Err("the identity provider gave no verified e-mail".into()));
                };
                users::add(
                    &mut tx,
                    &NewUser {
                        email,
                        role,
                        studies: &[],
                        password_hash: None,
                    },
                )
                .await?
                .user_id
            }
        };
        users::link_sso(&mut tx, id, &identity.issuer, &identity.subject).await?;
        users::set_role(&mut tx, id, role).await?;
        let current = users::get(&mut tx, id).await?.studies;
        users::revoke(&mut tx, id, &current).await?;
        users::grant(&mut tx, id, &known).await?;
        user = Some(users::get(&mut tx, id).await?);
    }
    tx.commit().await?;
    match user {
        Some(u) if u.disabled_at.is_some() => Ok(Err("the user is disabled".into())),
        Some(u) => Ok(Ok(u)),
        None => Ok(Err(
            "no wearhouse user for this identity; an admin adds one with `wearhouse-api user add --sso-only`"
                .into(),
        )),
    }
}

/// The most privileged role the claim grants and the studies it grants that role in.
fn granted(claimed: &[crate::oidc::ClaimedGrant]) -> Option<(Role, Vec<String>)> {
    let valid: Vec<(Role, Option<&str>)> = claimed
        .iter()
        .filter_map(|g| Some((g.role.parse::<Role>().ok()?, g.study.as_deref())))
        .collect();
    let role = valid.iter().map(|(r, _)| *r).min()?;
    let studies = valid
        .iter()
        .filter(|(r, _)| *r == role)
        .filter_map(|(_, s)| s.map(str::to_owned))
        .collect();
    Some((role, studies))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::ClaimedGrant;

    fn grant(role: &str, study: Option<&str>) -> ClaimedGrant {
        ClaimedGrant {
            role: role.into(),
            study: study.map(Into::into),
        }
    }

    #[test]
    fn the_most_privileged_role_wins_with_its_own_studies() {
        let claimed = [
            grant("analyst", Some("a")),
            grant("researcher", Some("b")),
            grant("researcher", Some("c")),
            grant("owner", Some("d")),
        ];
        assert_eq!(
            granted(&claimed),
            Some((Role::Researcher, vec!["b".into(), "c".into()]))
        );
        assert_eq!(granted(&[grant("owner", None)]), None);
        assert_eq!(
            granted(&[grant("admin", None)]),
            Some((Role::Admin, vec![]))
        );
    }

    #[test]
    fn only_a_path_of_this_site_is_returned_to() {
        assert_eq!(
            safe_return_to(Some("/#participant=P001")),
            "/#participant=P001"
        );
        assert_eq!(safe_return_to(Some("//evil.example/x")), "/");
        assert_eq!(safe_return_to(Some("https://evil.example/")), "/");
        assert_eq!(safe_return_to(Some("/\\evil.example")), "/");
        assert_eq!(safe_return_to(None), "/");
    }
}
