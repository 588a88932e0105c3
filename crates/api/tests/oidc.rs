//! Single sign-on against a local fake OpenID Provider: discovery, the code flow with PKCE, the
//! ID token checks and the settings' errors.

use std::path::PathBuf;

use wearhouse_api::oidc::{ClaimedGrant, Identity, Oidc, OidcArgs, OidcError, PendingLogin};
use wearhouse_fakes::{FakeOidcConfig, FakeOidcIssuer, FakeOidcUser, OidcFault};

const REDIRECT: &str = "https://wearhouse.test/api/auth/oidc/callback";
const SECRET: &str = "the-client-secret";

struct Setup {
    fake: FakeOidcIssuer,
    _dir: tempfile::TempDir,
    args: OidcArgs,
}

async fn setup() -> Setup {
    let fake = FakeOidcIssuer::start(FakeOidcConfig::new("wearhouse", SECRET, REDIRECT)).await;
    fake.add_user(
        FakeOidcUser::new("sub-1", "ada@example.org")
            .name("Ada Lovelace")
            .roles([
                "researcher:demo",
                "admin",
                "not a grant:",
                "analyst:trial-2",
            ]),
    );
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("oidc-client-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let args = OidcArgs {
        issuer: Some(fake.url()),
        client_id: Some("wearhouse".into()),
        client_secret_file: Some(secret_file),
        redirect_url: Some(REDIRECT.parse().unwrap()),
        roles_claim: Some("wearhouse_roles".into()),
        ..OidcArgs::default()
    };
    Setup {
        fake,
        _dir: dir,
        args,
    }
}

async fn discover(args: &OidcArgs) -> Oidc {
    Oidc::discover(args).await.unwrap().expect("sso configured")
}

/// The browser's round trip: the issuer's redirect back, as `(code, state)`.
async fn authorize(fake: &FakeOidcIssuer, url: &url::Url) -> (String, String) {
    let back = fake.authorize(url.as_str()).await.unwrap();
    let param = |key: &str| {
        back.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no {key} in {back}"))
    };
    (param("code"), param("state"))
}

async fn sign_in(fake: &FakeOidcIssuer, oidc: &Oidc) -> Result<Identity, OidcError> {
    let (url, pending) = oidc.start("/participants");
    let (code, state) = authorize(fake, &url).await;
    oidc.finish(&code, &state, &pending).await
}

#[tokio::test]
async fn signing_in_returns_who_the_issuer_vouches_for() {
    let s = setup().await;
    let oidc = discover(&s.args).await;
    let identity = sign_in(&s.fake, &oidc).await.unwrap();
    let grant = |role: &str, study: Option<&str>| ClaimedGrant {
        role: role.into(),
        study: study.map(Into::into),
    };
    assert_eq!(
        identity,
        Identity {
            issuer: s.fake.url(),
            subject: "sub-1".into(),
            email: Some("ada@example.org".into()),
            email_verified: true,
            name: Some("Ada Lovelace".into()),
            claimed: Some(vec![
                grant("researcher", Some("demo")),
                grant("admin", None),
                grant("analyst", Some("trial-2")),
            ]),
        }
    );
}

#[tokio::test]
async fn the_authorization_request_asks_for_the_code_flow_with_pkce() {
    let s = setup().await;
    let oidc = discover(&s.args).await;
    let (url, pending) = oidc.start("/participants/SYN0001");
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert!(
        url.as_str()
            .starts_with(&format!("{}/authorize?", s.fake.url()))
    );
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["redirect_uri"], REDIRECT);
    assert_eq!(
        query["scope"].split(' ').collect::<Vec<_>>(),
        ["openid", "email", "profile"]
    );
    assert!(!query["state"].is_empty() && !query["nonce"].is_empty());
    assert_eq!(pending.return_to, "/participants/SYN0001");
    // Two sign-ins never share a state.
    let (other, _) = oidc.start("/");
    assert_ne!(
        other.query_pairs().find(|(k, _)| k == "state").unwrap().1,
        query["state"]
    );
}

#[tokio::test]
async fn a_pending_login_survives_a_round_trip_through_json_and_hides_its_secrets() {
    let s = setup().await;
    let oidc = discover(&s.args).await;
    let (url, pending) = oidc.start("/");
    let kept = serde_json::to_string(&pending).unwrap();
    let restored: PendingLogin = serde_json::from_str(&kept).unwrap();
    let (code, state) = authorize(&s.fake, &url).await;
    assert!(!format!("{pending:?}").contains(&state));
    let identity = oidc.finish(&code, &state, &restored).await.unwrap();
    assert_eq!(identity.subject, "sub-1");
    assert!(!format!("{oidc:?}").contains(SECRET));
}

#[tokio::test]
async fn without_a_roles_claim_setting_roles_are_left_to_wearhouse() {
    let mut s = setup().await;
    s.args.roles_claim = None;
    let oidc = discover(&s.args).await;
    assert_eq!(sign_in(&s.fake, &oidc).await.unwrap().claimed, None);

    // Configured, but this user's token carries no roles: no grants, rather than an error.
    s.args.roles_claim = Some("wearhouse_roles".into());
    let oidc = discover(&s.args).await;
    s.fake
        .add_user(FakeOidcUser::new("sub-2", "bo@example.org").unverified_email());
    s.fake.sign_in_as("sub-2");
    let identity = sign_in(&s.fake, &oidc).await.unwrap();
    assert_eq!(identity.claimed, Some(vec![]));
    assert!(!identity.email_verified);
}

#[tokio::test]
async fn a_roles_claim_that_is_not_role_strings_is_refused() {
    let s = setup().await;
    let oidc = discover(&s.args).await;
    for malformed in [serde_json::json!(42), serde_json::json!(["admin", 7])] {
        s.fake
            .update_user("sub-1", |u| u.roles = Some(malformed.clone()));
        let err = sign_in(&s.fake, &oidc).await.unwrap_err();
        assert!(
            matches!(err, OidcError::RolesClaim { ref claim } if claim == "wearhouse_roles"),
            "{malformed}: {err:?}"
        );
    }
    // One space-separated string is a list too.
    s.fake.update_user("sub-1", |u| {
        u.roles = Some(serde_json::json!("coordinator:demo analyst"))
    });
    let claimed = sign_in(&s.fake, &oidc).await.unwrap().claimed.unwrap();
    let roles: Vec<_> = claimed
        .iter()
        .map(|g| (g.role.as_str(), g.study.as_deref()))
        .collect();
    assert_eq!(roles, [("coordinator", Some("demo")), ("analyst", None)]);
}

#[tokio::test]
async fn each_spoilt_id_token_is_refused_with_its_own_error() {
    let s = setup().await;
    let oidc = discover(&s.args).await;
    for (fault, expected) in [
        (OidcFault::WrongSignature, "bad_signature"),
        (OidcFault::WrongAudience, "wrong_audience"),
        (OidcFault::WrongNonce, "wrong_nonce"),
        (OidcFault::MissingNonce, "wrong_nonce"),
        (OidcFault::Expired, "expired"),
        (OidcFault::WrongIssuer, "wrong_issuer"),
    ] {
        s.fake.inject([fault.clone()]);
        let err = sign_in(&s.fake, &oidc).await.unwrap_err();
        assert_eq!(err.code(), expected, "{fault:?} gave {err:?}");
    }
    // The same client and issuer accept a whole token afterwards.
    assert!(sign_in(&s.fake, &oidc).await.is_ok());
}

#[tokio::test]
async fn a_rotated_signing_key_is_fetched_and_trusted() {
    let s = setup().await;
    let oidc = discover(&s.args).await;
    s.fake.rotate_keys();
    assert_eq!(sign_in(&s.fake, &oidc).await.unwrap().subject, "sub-1");
    // A forgery under the new key's id still fails after the keys were fetched again.
    s.fake.inject([OidcFault::WrongSignature]);
    let err = sign_in(&s.fake, &oidc).await.unwrap_err();
    assert!(matches!(err, OidcError::BadSignature(_)), "{err:?}");
}

#[tokio::test]
async fn a_callback_with_another_state_is_refused_before_the_code_is_spent() {
    let s = setup().await;
    let oidc = discover(&s.args).await;
    let (url, pending) = oidc.start("/");
    let (code, _) = authorize(&s.fake, &url).await;
    let (_, other_pending) = oidc.start("/");
    let err = oidc
        .finish(&code, "forged-state", &pending)
        .await
        .unwrap_err();
    assert!(matches!(err, OidcError::StateMismatch), "{err:?}");
    // A real state of another sign-in (another browser's cookie) does not fit either.
    let (other_url, _) = oidc.start("/");
    let (_, other_state) = authorize(&s.fake, &other_url).await;
    let err = oidc.finish(&code, &other_state, &other_pending).await;
    assert!(matches!(err, Err(OidcError::StateMismatch)), "{err:?}");
    assert!(s.fake.token_requests().is_empty());
}

#[tokio::test]
async fn a_code_works_once() {
    let s = setup().await;
    let oidc = discover(&s.args).await;
    let (url, pending) = oidc.start("/");
    let (code, state) = authorize(&s.fake, &url).await;
    oidc.finish(&code, &state, &pending).await.unwrap();
    let err = oidc.finish(&code, &state, &pending).await.unwrap_err();
    match &err {
        OidcError::TokenRefused { error, .. } => assert_eq!(error, "invalid_grant"),
        other => panic!("{other:?}"),
    }
    assert!(!err.to_string().contains(&code), "{err}");
}

#[tokio::test]
async fn a_sign_in_left_too_long_is_refused() {
    let s = setup().await;
    let oidc = discover(&s.args).await;
    let (url, mut pending) = oidc.start("/");
    let (code, state) = authorize(&s.fake, &url).await;
    pending.created_at -= chrono::Duration::minutes(11);
    let err = oidc.finish(&code, &state, &pending).await.unwrap_err();
    assert!(matches!(err, OidcError::LoginExpired), "{err:?}");
}

#[tokio::test]
async fn a_failing_token_endpoint_is_reported_and_the_next_sign_in_works() {
    let s = setup().await;
    let oidc = discover(&s.args).await;
    s.fake.inject([OidcFault::TokenEndpointStatus(500)]);
    let err = sign_in(&s.fake, &oidc).await.unwrap_err();
    match &err {
        OidcError::TokenRefused { error, .. } => assert_eq!(error, "server_error"),
        other => panic!("{other:?}"),
    }
    assert!(sign_in(&s.fake, &oidc).await.is_ok());
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_by_the_issuer() {
    let s = setup().await;
    let file = s.args.client_secret_file.clone().unwrap();
    std::fs::write(&file, "not-the-secret").unwrap();
    let oidc = discover(&s.args).await;
    let err = sign_in(&s.fake, &oidc).await.unwrap_err();
    match &err {
        OidcError::TokenRefused { error, .. } => assert_eq!(error, "invalid_client"),
        other => panic!("{other:?}"),
    }
    assert!(!err.to_string().contains("not-the-secret"));
    assert_eq!(
        s.fake.token_requests()[0].client_auth,
        "client_secret_basic"
    );
}

#[tokio::test]
async fn discovery_at_a_wrong_address_says_which_setting_and_why() {
    let s = setup().await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    for issuer in [closed, format!("{}/not-an-issuer", s.fake.url())] {
        let args = OidcArgs {
            issuer: Some(issuer.clone()),
            ..s.args.clone()
        };
        let err = format!("{:#}", Oidc::discover(&args).await.unwrap_err());
        assert!(err.contains("WEARHOUSE_OIDC_ISSUER"), "{err}");
        assert!(err.contains(&issuer), "{err}");
    }
    // An issuer whose discovery document names another issuer is not trusted.
    let args = OidcArgs {
        issuer: Some(s.fake.url().replace("127.0.0.1", "localhost")),
        ..s.args.clone()
    };
    assert!(Oidc::discover(&args).await.is_err());
}

#[tokio::test]
async fn half_set_settings_name_what_is_missing() {
    let s = setup().await;
    let missing = |f: fn(&mut OidcArgs)| {
        let mut args = s.args.clone();
        f(&mut args);
        args
    };
    let cases: [(OidcArgs, &str); 4] = [
        (missing(|a| a.client_id = None), "WEARHOUSE_OIDC_CLIENT_ID"),
        (
            missing(|a| a.client_secret_file = None),
            "WEARHOUSE_OIDC_CLIENT_SECRET_FILE",
        ),
        (
            missing(|a| a.redirect_url = None),
            "WEARHOUSE_OIDC_REDIRECT_URL",
        ),
        (missing(|a| a.issuer = None), "WEARHOUSE_OIDC_ISSUER"),
    ];
    for (args, setting) in cases {
        let err = format!("{:#}", Oidc::discover(&args).await.unwrap_err());
        assert!(err.contains(setting), "{setting}: {err}");
    }
    let absent = OidcArgs {
        client_secret_file: Some(PathBuf::from("/nonexistent/oidc-secret")),
        ..s.args.clone()
    };
    let err = format!("{:#}", Oidc::discover(&absent).await.unwrap_err());
    assert!(err.contains("WEARHOUSE_OIDC_CLIENT_SECRET_FILE"), "{err}");
    assert!(
        Oidc::discover(&OidcArgs::default())
            .await
            .unwrap()
            .is_none()
    );
}
