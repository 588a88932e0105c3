//! Single sign-on through the API's routes against a local fake OpenID Provider: the browser's
//! round trip, a user created from the issuer's roles claim, a user granted in wearhouse and
//! linked by a verified e-mail, and refusals (a forged token, no pending sign-in, no user).

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use wearhouse_api::oidc::OidcArgs;
use wearhouse_api::startup::ServeArgs;
use wearhouse_core::store::users::{self, NewUser, Role};
use wearhouse_fakes::{FakeOidcConfig, FakeOidcIssuer, FakeOidcUser, OidcFault};

use crate::support::*;

struct Sso {
    app: TestApp,
    fake: FakeOidcIssuer,
    _dir: tempfile::TempDir,
}

/// The API on a port picked beforehand (the callback URL names it) with single sign-on
/// against the fake issuer.
async fn sso(roles_claim: Option<&str>) -> Sso {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let callback = format!("http://127.0.0.1:{port}/auth/oidc/callback");
    let fake =
        FakeOidcIssuer::start(FakeOidcConfig::new("wearhouse", "sso-secret", &callback)).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("client-secret");
    std::fs::write(&secret, "sso-secret\n").unwrap();
    let args = ServeArgs {
        oidc: OidcArgs {
            issuer: Some(fake.url()),
            client_id: Some("wearhouse".into()),
            client_secret_file: Some(secret),
            redirect_url: Some(callback.parse().unwrap()),
            display_name: "Example SSO".into(),
            roles_claim: roles_claim.map(Into::into),
            ..OidcArgs::default()
        },
        ..ServeArgs::default()
    };
    let app = spawn_seeded_on(preferred_backend().await, args, port).await;
    Sso {
        app,
        fake,
        _dir: dir,
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn cookie_pair(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with(&format!("{name}=")) && !c.contains("Max-Age=0"))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

/// The browser's round trip for the user signed in at the fake: the final response of the
/// callback.
async fn round_trip(s: &Sso, return_to: &str) -> reqwest::Response {
    let client = no_redirects();
    let start = client
        .get(format!("{}/auth/oidc/start", s.app.base))
        .query(&[("return_to", return_to)])
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303);
    let pending = cookie_pair(&start, "wearhouse_oidc").expect("the pending sign-in cookie");
    let raw = start
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .next()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        raw.contains("HttpOnly") && raw.contains("SameSite=Lax"),
        "{raw}"
    );
    let to_issuer = start.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(to_issuer.starts_with(&s.fake.url()), "{to_issuer}");
    let back = s.fake.authorize(&to_issuer).await.unwrap();
    client
        .get(back.as_str())
        .header(COOKIE, pending)
        .send()
        .await
        .unwrap()
}

async fn me(app: &TestApp, session: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("{}/auth/me", app.base))
        .header(COOKIE, session)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_issuers_roles_claim_makes_the_user_and_the_browser_returns_to_its_view() {
    let s = sso(Some("wearhouse_roles")).await;
    let (_, providers) = s.app.get_json("/auth/providers").await;
    assert_eq!(providers["oidc"]["name"], "Example SSO");
    s.fake
        .add_user(FakeOidcUser::new("sub-ada", "ada@example.org").roles([
            "analyst:default",
            "researcher:default",
            "researcher:nosuch",
        ]));
    s.fake.sign_in_as("sub-ada");
    let done = round_trip(&s, "/#participant=P001&metric=steps").await;
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()[LOCATION], "/#participant=P001&metric=steps");
    let session = cookie_pair(&done, "wearhouse_session").expect("a session");
    let (status, who) = me(&s.app, &session).await;
    assert_eq!(status, 200, "{who}");
    assert_eq!(
        who,
        json!({"email": "ada@example.org", "role": "researcher", "studies": ["default"]})
    );
    let method: Value = sqlx::query_scalar("select detail from audit_log where action = 'login'")
        .fetch_one(&s.app.db.as_ref().unwrap().pool)
        .await
        .unwrap();
    assert_eq!(method["method"], "oidc");

    // A forged ID token is refused, and so is a callback without the pending sign-in.
    s.fake.inject([OidcFault::WrongSignature]);
    let refused = round_trip(&s, "/").await;
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "sign_in_refused");
    let r = no_redirects()
        .get(format!("{}/auth/oidc/callback?code=x&state=y", s.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let failures: i64 =
        sqlx::query_scalar("select count(*) from audit_log where action = 'login_failed'")
            .fetch_one(&s.app.db.as_ref().unwrap().pool)
            .await
            .unwrap();
    assert_eq!(failures, 2);

    // Only paths of this site are returned to.
    s.fake.sign_in_as("sub-ada");
    let done = round_trip(&s, "//evil.example/").await;
    assert_eq!(done.headers()[LOCATION], "/");
}

#[tokio::test]
async fn without_a_roles_claim_only_users_granted_in_wearhouse_sign_in_linked_by_verified_email() {
    let s = sso(None).await;
    s.fake
        .add_user(FakeOidcUser::new("sub-bob", "bob@example.org"));
    s.fake
        .add_user(FakeOidcUser::new("sub-eve", "eve@example.org").unverified_email());
    s.fake
        .add_user(FakeOidcUser::new("sub-zed", "zed@example.org"));
    {
        let mut conn = s.app.db.as_ref().unwrap().pool.acquire().await.unwrap();
        for email in ["bob@example.org", "eve@example.org"] {
            users::add(
                &mut conn,
                &NewUser {
                    email,
                    role: Role::Coordinator,
                    studies: &["default".to_owned()],
                    password_hash: None,
                },
            )
            .await
            .unwrap();
        }
    }
    s.fake.sign_in_as("sub-bob");
    let done = round_trip(&s, "/").await;
    assert_eq!(done.status(), 303);
    let session = cookie_pair(&done, "wearhouse_session").unwrap();
    assert_eq!(me(&s.app, &session).await.1["role"], "coordinator");

    // An e-mail the issuer has not verified links nothing; an unknown user is refused.
    for who in ["sub-eve", "sub-zed"] {
        s.fake.sign_in_as(who);
        let r = round_trip(&s, "/").await;
        assert_eq!(r.status(), 401, "{who}");
    }
}
