//! The `enroll` command end to end through the real binary: it prints the consent link, the
//! participant consents at the (fake) provider, the browser follows the redirect to the
//! command's callback, and the grant, provider user id and time zone end up stored.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use chrono_tz::Tz;
use wearhouse_core::testing::{TestBackend, TestDb};
use wearhouse_fakes::{
    FakeFitbit, FakeFitbitConfig, FakeGoogleConfig, FakeGoogleHealth, FakeGoogleUser, FakeUser,
};

use crate::support::process::free_port;

/// Starts `wearhouse-ingest enroll` with `args`; its stdout lines arrive on the receiver.
fn enroll(args: &[String]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wearhouse-ingest"))
        .arg("enroll")
        .args(args)
        .env("WEARHOUSE_TOKEN_KEY_FILE", crate::support::token_key_file())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start enroll");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// The consent link the command printed.
fn consent_link(lines: &mpsc::Receiver<String>) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("enroll printed no consent link");
        if line.starts_with("http") {
            return line;
        }
    }
}

/// Plays the browser's last step: follows the provider's redirect to our callback.
async fn follow(redirect: url::Url) -> (u16, String) {
    let r = reqwest::get(redirect).await.expect("callback reachable");
    (r.status().as_u16(), r.text().await.unwrap())
}

fn finish(mut child: Child, lines: &mpsc::Receiver<String>) -> String {
    let status = child.wait().unwrap();
    assert!(status.success(), "enroll failed: {status}");
    // Everything up to the end of the output: the reader thread may still be reading the last
    // lines when the child has exited; it ends (and the iterator with it) at end of file.
    lines.iter().collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn enrolling_with_fitbit_through_the_binary_stores_the_grant_and_creates_the_participant() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let fake = FakeFitbit::start(FakeFitbitConfig::server_app("23ABCD", "fitbit-secret")).await;
    fake.add_user(FakeUser::new("7QX2LB", Tz::Europe__Berlin));
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let (child, lines) = enroll(&[
        "--database-url".into(),
        db.url.clone(),
        "--participant".into(),
        "P001".into(),
        "--provider".into(),
        "fitbit".into(),
        "--timezone".into(),
        "America/New_York".into(),
        "--fitbit-client-id".into(),
        "23ABCD".into(),
        "--fitbit-client-secret".into(),
        "fitbit-secret".into(),
        "--fitbit-api-url".into(),
        fake.url(),
        "--fitbit-authorize-url".into(),
        fake.authorize_url(),
        "--fitbit-redirect-uri".into(),
        redirect.clone(),
    ]);
    let link = consent_link(&lines);
    let back = fake.consent(&link).await.expect("consent given");
    assert!(back.as_str().starts_with(&redirect), "{back}");
    let (status, page) = follow(back).await;
    assert_eq!(status, 200, "{page}");
    let out = finish(child, &lines);
    assert!(out.contains("P001 is enrolled with fitbit"), "{out}");

    let (provider, user, zone): (String, String, String) = sqlx::query_as(
        "select provider, provider_user_id, timezone from participants where participant_id = 'P001'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    // The zone Fitbit's profile reports replaces the one given for the new participant.
    assert_eq!(
        (provider.as_str(), user.as_str(), zone.as_str()),
        ("fitbit", "7QX2LB", "Europe/Berlin")
    );
    let (token_user, has_refresh): (String, bool) = sqlx::query_as(
        "select provider_user_id, refresh_token_sealed is not null from oauth_tokens
         where participant_id = 'P001' and provider = 'fitbit' and revoked_at is null",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(token_user, "7QX2LB");
    assert!(has_refresh);
    // Creating and enrolling the participant are both in the audit trail.
    let changes: Vec<(String, String, Vec<String>, serde_json::Value)> = sqlx::query_as(
        "select action, coalesce(study_id, ''), participant_ids, detail from audit_log order by audit_id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(
        changes
            .iter()
            .all(|c| c.0 == "participant_changed" && c.1 == "default" && c.2 == ["P001"])
    );
    assert_eq!(changes[0].3["change"], "created");
    assert_eq!(changes[1].3["change"], "enrolled");
}

#[tokio::test]
async fn enrolling_with_google_health_through_the_binary_stores_the_grant() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let (client_id, secret) = ("1234-fake.apps.googleusercontent.com", "GOCSPX-fake");
    let fake = FakeGoogleHealth::start(FakeGoogleConfig::new(client_id, secret)).await;
    fake.add_user(FakeGoogleUser::new("health-user-1", Tz::Asia__Tokyo));
    let base = fake.url();
    let base = base.trim_end_matches('/');
    let redirect = format!("http://127.0.0.1:{}/google/callback", free_port());
    let (child, lines) = enroll(&[
        "--database-url".into(),
        db.url.clone(),
        "--participant".into(),
        "P002".into(),
        "--provider".into(),
        "google-health".into(),
        "--google-client-id".into(),
        client_id.into(),
        "--google-client-secret".into(),
        secret.into(),
        "--google-api-url".into(),
        base.into(),
        "--google-authorize-url".into(),
        format!("{base}/o/oauth2/v2/auth"),
        "--google-token-url".into(),
        format!("{base}/token"),
        "--google-revoke-url".into(),
        format!("{base}/revoke"),
        "--google-redirect-uri".into(),
        redirect.clone(),
    ]);
    let link = consent_link(&lines);
    let back = fake.consent(&link).await.expect("consent given");
    let (status, page) = follow(back).await;
    assert_eq!(status, 200, "{page}");
    let out = finish(child, &lines);
    assert!(out.contains("P002 is enrolled with google-health"), "{out}");

    let (provider, zone): (String, String) =
        sqlx::query_as("select provider, timezone from participants where participant_id = 'P002'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        (provider.as_str(), zone.as_str()),
        ("google-health", "Asia/Tokyo")
    );
    let token_user: String = sqlx::query_scalar(
        "select provider_user_id from oauth_tokens
         where participant_id = 'P002' and provider = 'google-health' and revoked_at is null",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(token_user, "health-user-1");
}
