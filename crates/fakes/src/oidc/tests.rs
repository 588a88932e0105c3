//! The fake issuer as a relying party meets it over HTTP, without any OpenID Connect library:
//! discovery, the code flow by hand, and its refusals.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use super::*;
use crate::token::s256_challenge;

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "a-verifier-of-at-least-forty-three-characters-0123456789";

async fn issuer() -> FakeOidcIssuer {
    let fake = FakeOidcIssuer::start(FakeOidcConfig::new("wearhouse", "s3cret", REDIRECT)).await;
    fake.add_user(
        FakeOidcUser::new("sub-1", "ada@example.org")
            .name("Ada")
            .roles(["researcher:demo", "admin"]),
    );
    fake
}

fn authorization_url(fake: &FakeOidcIssuer, change: &[(&str, Option<&str>)]) -> String {
    let challenge = s256_challenge(VERIFIER);
    let mut params: Vec<(&str, Option<&str>)> = vec![
        ("client_id", Some("wearhouse")),
        ("redirect_uri", Some(REDIRECT)),
        ("response_type", Some("code")),
        ("scope", Some("openid email")),
        ("state", Some("st-1")),
        ("nonce", Some("n-1")),
        ("code_challenge", Some(&challenge)),
        ("code_challenge_method", Some("S256")),
    ];
    for (key, value) in change {
        params.retain(|(k, _)| k != key);
        params.push((key, *value));
    }
    let mut url = url::Url::parse(&format!("{}/authorize", fake.url())).unwrap();
    for (k, v) in params {
        if let Some(v) = v {
            url.query_pairs_mut().append_pair(k, v);
        }
    }
    url.into()
}

fn param(url: &url::Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

async fn code(fake: &FakeOidcIssuer) -> String {
    let back = fake.authorize(&authorization_url(fake, &[])).await.unwrap();
    assert_eq!(param(&back, "state").as_deref(), Some("st-1"));
    param(&back, "code").expect("a code")
}

async fn exchange(fake: &FakeOidcIssuer, code: &str, verifier: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/token", fake.url()))
        .basic_auth("wearhouse", Some("s3cret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap()
}

fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn discovery_names_the_issuer_and_its_endpoints() {
    let fake = issuer().await;
    let doc: Value = reqwest::get(format!("{}/.well-known/openid-configuration", fake.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], fake.url());
    assert_eq!(doc["token_endpoint"], format!("{}/token", fake.url()));
    assert_eq!(doc["code_challenge_methods_supported"][0], "S256");
    let jwks: Value = reqwest::get(doc["jwks_uri"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], keys::Key::First.id());
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
}

#[tokio::test]
async fn a_code_with_its_verifier_yields_an_id_token_once() {
    let fake = issuer().await;
    let code = code(&fake).await;
    let answer = exchange(&fake, &code, VERIFIER).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    let claims = payload(body["id_token"].as_str().unwrap());
    assert_eq!(claims["iss"], fake.url());
    assert_eq!(claims["sub"], "sub-1");
    assert_eq!(claims["aud"], "wearhouse");
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["email"], "ada@example.org");
    assert_eq!(claims["name"], "Ada");
    assert_eq!(
        claims["wearhouse_roles"],
        serde_json::json!(["researcher:demo", "admin"])
    );
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());

    let again = exchange(&fake, &code, VERIFIER).await;
    assert_eq!(again.status(), 400);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_refused() {
    let fake = issuer().await;
    let code = code(&fake).await;
    let answer = exchange(
        &fake,
        &code,
        "another-verifier-of-forty-three-characters-000000",
    )
    .await;
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn client_credentials_are_checked_in_either_place() {
    let fake = issuer().await;
    let code = code(&fake).await;
    let wrong = reqwest::Client::new()
        .post(format!("{}/token", fake.url()))
        .basic_auth("wearhouse", Some("not-the-secret"))
        .form(&[("grant_type", "authorization_code"), ("code", &code)])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().contains_key("www-authenticate"));

    let by_post = reqwest::Client::new()
        .post(format!("{}/token", fake.url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", "wearhouse"),
            ("client_secret", "s3cret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(by_post.status(), 200);
    let methods: Vec<String> = fake
        .token_requests()
        .into_iter()
        .map(|r| r.client_auth)
        .collect();
    assert_eq!(methods, ["client_secret_basic", "client_secret_post"]);
}

#[tokio::test]
async fn an_unregistered_redirect_uri_gets_an_error_page_not_a_redirect() {
    let fake = issuer().await;
    let url = authorization_url(
        &fake,
        &[("redirect_uri", Some("https://attacker.invalid/cb"))],
    );
    let err = fake.authorize(&url).await.unwrap_err();
    assert!(err.contains("redirect_uri"), "{err}");
}

#[tokio::test]
async fn refusals_go_back_to_the_client_with_the_state() {
    let fake = issuer().await;
    for (change, error) in [
        (("nonce", None), "invalid_request"),
        (("code_challenge", None), "invalid_request"),
        (("code_challenge_method", Some("plain")), "invalid_request"),
        (("scope", Some("email")), "invalid_scope"),
        (
            ("response_type", Some("token")),
            "unsupported_response_type",
        ),
    ] {
        let back = fake
            .authorize(&authorization_url(&fake, &[change]))
            .await
            .unwrap();
        assert_eq!(param(&back, "error").as_deref(), Some(error), "{change:?}");
        assert_eq!(param(&back, "state").as_deref(), Some("st-1"));
        assert_eq!(param(&back, "code"), None);
    }
    fake.sign_out();
    let back = fake
        .authorize(&authorization_url(&fake, &[]))
        .await
        .unwrap();
    assert_eq!(param(&back, "error").as_deref(), Some("login_required"));
}

#[tokio::test]
async fn the_login_hint_or_the_chosen_user_signs_in() {
    let fake = issuer().await;
    fake.add_user(FakeOidcUser::new("sub-2", "bo@example.org"));
    let hinted = authorization_url(&fake, &[("login_hint", Some("bo@example.org"))]);
    let back = fake.authorize(&hinted).await.unwrap();
    let body: Value = exchange(&fake, &param(&back, "code").unwrap(), VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(payload(body["id_token"].as_str().unwrap())["sub"], "sub-2");

    fake.sign_in_as("sub-2");
    let body: Value = exchange(&fake, &code(&fake).await, VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(payload(body["id_token"].as_str().unwrap())["sub"], "sub-2");
}

#[tokio::test]
async fn a_code_expires_after_ten_minutes() {
    let fake = issuer().await;
    let code = code(&fake).await;
    fake.advance(chrono::Duration::minutes(11));
    let answer = exchange(&fake, &code, VERIFIER).await;
    assert_eq!(answer.status(), 400);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn a_code_issued_to_one_client_is_refused_to_another() {
    let config =
        FakeOidcConfig::new("wearhouse", "s3cret", REDIRECT).client("other", "o", REDIRECT);
    let fake = FakeOidcIssuer::start(config).await;
    fake.add_user(FakeOidcUser::new("sub-1", "ada@example.org"));
    let code = code(&fake).await;
    let answer = reqwest::Client::new()
        .post(format!("{}/token", fake.url()))
        .basic_auth("other", Some("o"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    assert_eq!(
        fake.token_requests()[0].error.as_deref(),
        Some("invalid_grant")
    );
    // The rightful client still can.
    assert_eq!(exchange(&fake, &code, VERIFIER).await.status(), 200);
}

#[tokio::test]
async fn a_failing_token_endpoint_fails_once_and_keeps_the_code() {
    let fake = issuer().await;
    fake.inject([OidcFault::TokenEndpointStatus(500)]);
    let code = code(&fake).await;
    assert_eq!(exchange(&fake, &code, VERIFIER).await.status(), 500);
    assert_eq!(exchange(&fake, &code, VERIFIER).await.status(), 200);
}

async fn claims_with(fake: &FakeOidcIssuer, fault: OidcFault) -> Value {
    fake.inject([fault]);
    let body: Value = exchange(fake, &code(fake).await, VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    payload(body["id_token"].as_str().unwrap())
}

#[tokio::test]
async fn id_token_faults_spoil_the_claims_they_name() {
    let fake = issuer().await;
    let f = &fake;
    assert_ne!(
        claims_with(f, OidcFault::WrongAudience).await["aud"],
        "wearhouse"
    );
    assert_ne!(
        claims_with(f, OidcFault::WrongIssuer).await["iss"],
        fake.url()
    );
    assert_ne!(claims_with(f, OidcFault::WrongNonce).await["nonce"], "n-1");
    assert!(
        claims_with(f, OidcFault::MissingNonce)
            .await
            .get("nonce")
            .is_none()
    );
    let expired = claims_with(f, OidcFault::Expired).await;
    assert!(expired["exp"].as_i64().unwrap() < chrono::Utc::now().timestamp());
    // Each fault spoils one token: the next is whole again.
    let body: Value = exchange(f, &code(f).await, VERIFIER)
        .await
        .json()
        .await
        .unwrap();
    let whole = payload(body["id_token"].as_str().unwrap());
    assert_eq!(
        (whole["aud"].as_str(), whole["nonce"].as_str()),
        (Some("wearhouse"), Some("n-1"))
    );
}
