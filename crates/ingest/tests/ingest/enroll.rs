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

/// The Fitbit settings of a command, pointed at the fake, with the callback at `redirect`.
fn fitbit_args(fake: &FakeFitbit, redirect: &str) -> Vec<String> {
    [
        ("--fitbit-client-id", "23ABCD".to_owned()),
        ("--fitbit-client-secret", "fitbit-secret".to_owned()),
        ("--fitbit-api-url", fake.url()),
        ("--fitbit-authorize-url", fake.authorize_url()),
        ("--fitbit-redirect-uri", redirect.to_owned()),
        ("--fitbit-retry-base-ms", "10".to_owned()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_owned(), v])
    .collect()
}

/// Runs the ingest binary with `args` (async: the fakes serve from the test's runtime) and
/// returns whether it succeeded, with stdout and stderr together.
async fn ingest(args: &[String]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wearhouse-ingest"))
        .args(args)
        .env("WEARHOUSE_TOKEN_KEY_FILE", crate::support::token_key_file())
        .env("WEARHOUSE_LOG_FORMAT", "pretty")
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The first and last local day (Berlin) with a step count of the participant (a night's
/// sleep is fetched with the day it ends, so it starts the evening before).
async fn loaded_days(db: &TestDb, participant: &str) -> (Option<String>, Option<String>) {
    sqlx::query_as(
        "select min((timestamp at time zone 'Europe/Berlin')::date)::text,
                max((timestamp at time zone 'Europe/Berlin')::date)::text
         from raw_data where participant_id = $1 and data_type = 'steps'",
    )
    .bind(participant)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// A study enrols someone who wore their tracker before: `enroll --backfill-from` reaches
/// before enrolment (which is today), and a start before the Fitbit account existed is
/// clamped to the day the profile names, with the reason in the run's log.
#[tokio::test]
async fn enroll_with_a_backfill_start_loads_history_from_before_enrolment_from_the_account_start() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let fake = FakeFitbit::start(FakeFitbitConfig::server_app("23ABCD", "fitbit-secret")).await;
    fake.add_user(
        FakeUser::new("7QX2LB", Tz::Europe__Berlin)
            .member_since("2025-05-28")
            .last_sync("2025-06-03T12:00:00"),
    );
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let mut args: Vec<String> = [
        "--database-url",
        &db.url,
        "--participant",
        "P010",
        "--provider",
        "fitbit",
        "--backfill-from",
        "2025-05-20",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(fitbit_args(&fake, &redirect));
    let (child, lines) = enroll(&args);
    let back = fake.consent(&consent_link(&lines)).await.unwrap();
    assert_eq!(follow(back).await.0, 200);
    finish(child, &lines);
    let (from, since): (Option<chrono::NaiveDate>, Option<chrono::NaiveDate>) = sqlx::query_as(
        "select backfill_from, provider_account_since from participants where participant_id = 'P010'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (from.unwrap().to_string(), since.unwrap().to_string()),
        ("2025-05-20".into(), "2025-05-28".into())
    );

    let mut run: Vec<String> = ["run", "--database-url", &db.url]
        .map(str::to_owned)
        .to_vec();
    run.extend(fitbit_args(&fake, &redirect));
    let (ok, log) = ingest(&run).await;
    assert!(ok, "{log}");
    assert!(log.contains("backfill start clamped"), "{log}");
    // Enrolled today, yet loaded from the account's first day to the tracker's last sync.
    assert_eq!(
        loaded_days(&db, "P010").await,
        (Some("2025-05-28".into()), Some("2025-06-03".into()))
    );

    // A start in the future is refused, saying which days are allowed; nothing changes.
    let (ok, out) = ingest(
        &[
            "participant",
            "set-backfill",
            "--participant",
            "P010",
            "--from",
            "2999-01-01",
            "--database-url",
            &db.url,
        ]
        .map(str::to_owned),
    )
    .await;
    assert!(!ok);
    assert!(out.contains("--from: 2999-01-01 is in the future"), "{out}");
    // Setting a start says when the account began and that the load starts there.
    let (ok, out) = ingest(
        &[
            "participant",
            "set-backfill",
            "--participant",
            "P010",
            "--from",
            "2025-05-01",
            "--database-url",
            &db.url,
        ]
        .map(str::to_owned),
    )
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("account was created on 2025-05-28, so the load starts there"),
        "{out}"
    );
}

/// The callback's port is taken by another program: the command says how to go on and
/// creates nobody.
#[tokio::test]
async fn enroll_on_a_port_another_program_holds_says_what_to_do_and_creates_nobody() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let fake = FakeFitbit::start(FakeFitbitConfig::server_app("23ABCD", "fitbit-secret")).await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let redirect = format!(
        "http://127.0.0.1:{}/callback",
        taken.local_addr().unwrap().port()
    );
    let mut args: Vec<String> = [
        "enroll",
        "--database-url",
        &db.url,
        "--participant",
        "P011",
        "--provider",
        "fitbit",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(fitbit_args(&fake, &redirect));
    let (ok, out) = ingest(&args).await;
    assert!(!ok);
    assert!(out.contains("pass --listen"), "{out}");
    assert!(out.contains("no participant was created"), "{out}");
    let n: i64 =
        sqlx::query_scalar("select count(*) from participants where participant_id = 'P011'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(n, 0);
    drop(taken);
}

/// The daemon already serves the callback: `enroll` hands the consent to it through a
/// single-use link and returns as soon as the daemon has stored the grant.
#[tokio::test]
async fn enroll_next_to_the_daemon_completes_through_the_daemon() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let fake = FakeFitbit::start(FakeFitbitConfig::server_app("23ABCD", "fitbit-secret")).await;
    fake.add_user(FakeUser::new("7QX2LB", Tz::Europe__Berlin));
    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let providers = fitbit_args(&fake, &redirect);
    let daemon_args: Vec<&str> = providers.iter().map(String::as_str).collect();
    let (mut daemon, mut logs) = crate::support::process::daemon(&db.url, port, &daemon_args);
    logs.until("serving /health").await;

    let mut args: Vec<String> = [
        "--database-url",
        &db.url,
        "--participant",
        "P012",
        "--provider",
        "fitbit",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(providers.clone());
    let (child, lines) = enroll(&args);
    let link = consent_link(&lines);
    assert!(
        link.starts_with(&format!("http://127.0.0.1:{port}/consent/")),
        "{link}"
    );
    // The participant's browser: the daemon's link redirects to the provider's consent page,
    // whose answer comes back to the daemon's callback.
    let to_provider = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&link)
        .send()
        .await
        .unwrap();
    let page = to_provider.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let back = fake.consent(&page).await.unwrap();
    assert_eq!(follow(back).await.0, 200);
    let out = finish(child, &lines);
    assert!(
        out.contains("P012 is enrolled with fitbit (user 7QX2LB, time zone Europe/Berlin) through the ingest daemon"),
        "{out}"
    );
    crate::support::process::terminate(&mut daemon).await;
}

/// A start set later, earlier than the one in force, moves the watermarks back: the next run
/// fetches the earlier days, and the days already loaded stay as they were.
#[tokio::test]
async fn an_earlier_backfill_start_set_later_fetches_the_earlier_days_on_the_next_run() {
    use chrono::TimeZone as _;
    let db = TestDb::new(TestBackend::Postgres).await;
    let fake = FakeFitbit::start(FakeFitbitConfig::server_app("23ABCD", "fitbit-secret")).await;
    fake.add_user(FakeUser::new("7QX2LB", Tz::Europe__Berlin).last_sync("2025-06-03T12:00:00"));
    let grant = crate::support::fitbit::grant(fake.issue_tokens("7QX2LB"));
    let enrolled = Tz::Europe__Berlin
        .with_ymd_and_hms(2025, 6, 1, 9, 0, 0)
        .unwrap()
        .to_utc();
    crate::support::enrol(
        &db.pool,
        "P013",
        "fitbit",
        Tz::Europe__Berlin,
        Some(enrolled),
        &grant,
    )
    .await;
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let mut run: Vec<String> = ["run", "--database-url", &db.url]
        .map(str::to_owned)
        .to_vec();
    run.extend(fitbit_args(&fake, &redirect));
    let (ok, log) = ingest(&run).await;
    assert!(ok, "{log}");
    assert_eq!(
        loaded_days(&db, "P013").await,
        (Some("2025-06-01".into()), Some("2025-06-03".into()))
    );
    // The first load's rows, every one written again unchanged by the second.
    let snapshot = "select md5(string_agg(timestamp::text || data_type || coalesce(value_numeric::text, '')
                                          || coalesce(value_text, ''), ',' order by timestamp, data_type))
                    from raw_data where participant_id = 'P013'
                      and timestamp >= '2025-06-01 00:00 Europe/Berlin'";
    let june: String = sqlx::query_scalar(snapshot)
        .fetch_one(&db.pool)
        .await
        .unwrap();

    let (ok, out) = ingest(
        &[
            "participant",
            "set-backfill",
            "--participant",
            "P013",
            "--from",
            "2025-05-29",
            "--database-url",
            &db.url,
        ]
        .map(str::to_owned),
    )
    .await;
    assert!(ok, "{out}");
    assert!(
        out.contains("participant P013 is loaded from 2025-05-29"),
        "{out}"
    );
    assert!(out.contains("watermark(s) moved back"), "{out}");
    // The next run: an hour later, with the hourly request quota renewed.
    fake.advance(chrono::Duration::hours(1));
    let (ok, log) = ingest(&run).await;
    assert!(ok, "{log}");
    assert_eq!(
        loaded_days(&db, "P013").await,
        (Some("2025-05-29".into()), Some("2025-06-03".into()))
    );
    let june_again: String = sqlx::query_scalar(snapshot)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(june_again, june, "the days loaded before changed");
    // The change is in the audit trail.
    let detail: serde_json::Value = sqlx::query_scalar(
        "select detail from audit_log where action = 'participant_changed'
         order by audit_id desc limit 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(detail["backfill_from"], "2025-05-29");
}
