//! Participants' OAuth grants at rest: sealed in the table (no token readable in any column),
//! bound to their row and field, opened only by their key, re-sealed by `rotate-token-key`,
//! grants from before encryption sealed at start, and token types that never print a token.

use chrono::Utc;
use chrono_tz::America::New_York;
use wearhouse_core::ParticipantId;
use wearhouse_core::crypto::TokenKey;
use wearhouse_core::store::grants::{self, NewGrant};
use wearhouse_fakes::FakeUser;
use wearhouse_ingest::oauth::{TokenResponse, store};
use wearhouse_ingest::sources::Source;

use crate::support::fitbit::env;
use crate::support::{token_key, token_key_file};

/// Every column of every grant row, as PostgreSQL prints it (bytea as hex).
async fn table_as_text(pool: &sqlx::PgPool) -> String {
    sqlx::query_scalar::<_, String>("select string_agg(t::text, E'\\n') from oauth_tokens t")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Fails when `secret` appears in `text`, as text or as the hex of its bytes.
fn assert_absent(text: &str, secret: &str) {
    assert!(
        secret.len() >= 8,
        "a token this short proves nothing: {secret:?}"
    );
    assert!(!text.contains(secret), "a token in plain text:\n{text}");
    assert!(
        !text.contains(&hex::encode(secret)),
        "a token's bytes in plain text:\n{text}"
    );
}

#[tokio::test]
async fn the_token_table_holds_no_token_in_plain_text_after_enrolment_and_refresh() {
    let env = env(vec![FakeUser::new("7QX2LB", New_York)]).await;
    let p = env.enrol("P001", "7QX2LB", New_York).await;
    let enrolled = env.token_row(&p).await;
    let text = table_as_text(&env.db.pool).await;
    assert_absent(&text, &enrolled.access_token);
    assert_absent(&text, enrolled.refresh_token.as_deref().unwrap());

    // A refresh stores a new pair, sealed too.
    env.fake.advance(chrono::Duration::hours(9));
    env.source.last_sync(&p).await.unwrap();
    assert_eq!(env.fake.refresh_count("7QX2LB"), 1);
    let refreshed = env.token_row(&p).await;
    assert_ne!(refreshed.access_token, enrolled.access_token);
    let text = table_as_text(&env.db.pool).await;
    for token in [
        &enrolled.access_token,
        enrolled.refresh_token.as_ref().unwrap(),
        &refreshed.access_token,
        refreshed.refresh_token.as_ref().unwrap(),
    ] {
        assert_absent(&text, token);
    }
    assert!(
        text.contains(token_key().id()),
        "the key id is kept:\n{text}"
    );
}

#[tokio::test]
async fn a_grant_does_not_open_with_another_key_nor_in_another_row() {
    let env = env(vec![
        FakeUser::new("7QX2LB", New_York),
        FakeUser::new("8ABCDE", New_York),
    ])
    .await;
    let p1 = env.enrol("P001", "7QX2LB", New_York).await;
    let p2 = env.enrol("P002", "8ABCDE", New_York).await;
    let mut conn = env.db.pool.acquire().await.unwrap();

    let (other, _) = TokenKey::generate();
    let e = store::load(&mut conn, &other, &p1.id, "fitbit")
        .await
        .unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains("P001") && message.contains(token_key().id()),
        "{message}"
    );
    assert!(message.contains("wrong key file"), "{message}");

    // P001's sealed access token copied into P002's row: it is P001's, so it does not open
    // there, and P002's refresh token moved into the access column does not open either.
    sqlx::query(
        "update oauth_tokens set access_token_sealed =
           (select access_token_sealed from oauth_tokens where participant_id = 'P001')
         where participant_id = 'P002'",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    let e = store::load(&mut conn, &token_key(), &p2.id, "fitbit")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("P002"), "{e}");
    sqlx::query(
        "update oauth_tokens set access_token_sealed = refresh_token_sealed
         where participant_id = 'P001'",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    assert!(
        store::load(&mut conn, &token_key(), &p1.id, "fitbit")
            .await
            .is_err()
    );
}

/// Runs the ingest binary with `args`; (success, stdout, stderr).
async fn ingest(args: &[&str], key_file: Option<&std::path::Path>) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_wearhouse-ingest"));
    cmd.args(args).env_remove("WEARHOUSE_TOKEN_KEY_FILE");
    if let Some(f) = key_file {
        cmd.env("WEARHOUSE_TOKEN_KEY_FILE", f);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn rotation_re_encrypts_every_grant_and_the_old_key_no_longer_opens_them() {
    let env = env(vec![
        FakeUser::new("7QX2LB", New_York),
        FakeUser::new("8ABCDE", New_York),
    ])
    .await;
    let p1 = env.enrol("P001", "7QX2LB", New_York).await;
    env.enrol("P002", "8ABCDE", New_York).await;
    let before = env.token_row(&p1).await;
    let (new, new_text) = TokenKey::generate();
    let dir = tempfile::tempdir().unwrap();
    let new_file = dir.path().join("new-key");
    std::fs::write(&new_file, new_text).unwrap();

    let (ok, out, err) = ingest(
        &[
            "rotate-token-key",
            "--database-url",
            &env.db.url,
            "--old-key-file",
            token_key_file().to_str().unwrap(),
            "--new-key-file",
            new_file.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("2 grant(s) re-encrypted"), "{out}");

    let mut conn = env.db.pool.acquire().await.unwrap();
    let after = store::load(&mut conn, &new, &p1.id, "fitbit")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.access_token, before.access_token);
    assert_eq!(after.refresh_token, before.refresh_token);
    assert!(
        store::load(&mut conn, &token_key(), &p1.id, "fitbit")
            .await
            .is_err()
    );
    let ids: Vec<String> = sqlx::query_scalar("select distinct token_key_id from oauth_tokens")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    assert_eq!(ids, [new.id()]);
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from audit_log where action = 'grant_key_rotated'
         and (detail->>'grants')::int = 2",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(audited, 1);

    // The grants are no longer sealed under the old key: a rotation from it fails on the
    // first row and changes nothing.
    let (_, third_text) = TokenKey::generate();
    let third_file = dir.path().join("third-key");
    std::fs::write(&third_file, third_text).unwrap();
    let (ok, _, err) = ingest(
        &[
            "rotate-token-key",
            "--database-url",
            &env.db.url,
            "--old-key-file",
            token_key_file().to_str().unwrap(),
            "--new-key-file",
            third_file.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains("nothing was changed") && err.contains(new.id()),
        "{err}"
    );
    let ids: Vec<String> = sqlx::query_scalar("select distinct token_key_id from oauth_tokens")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    assert_eq!(ids, [new.id()]);
}

#[tokio::test]
async fn grants_stored_in_plain_text_before_encryption_are_sealed_when_the_ingest_starts() {
    let env = env(vec![]).await;
    sqlx::raw_sql(
        // Paused, so the run has nobody to load and succeeds once the grants are sealed.
        "insert into participants (participant_id, provider, status)
         values ('P001', 'fitbit', 'paused');
         insert into oauth_tokens (participant_id, provider, plain_access_token,
                                   plain_refresh_token, expires_at)
         values ('P001', 'fitbit', 'plain-access-token-1', 'plain-refresh-token-1',
                 now() + interval '1 hour')",
    )
    .execute(&env.db.pool)
    .await
    .unwrap();
    let run = ["run", "--database-url", &env.db.url];

    // Without a key the ingest refuses to start rather than leave them.
    let (ok, _, err) = ingest(&run, None).await;
    assert!(!ok);
    assert!(err.contains("WEARHOUSE_TOKEN_KEY_FILE"), "{err}");
    // A malformed key file is named as such.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad-key");
    std::fs::write(&bad, "not a key").unwrap();
    let (ok, _, err) = ingest(&run, Some(&bad)).await;
    assert!(!ok);
    assert!(
        err.contains("WEARHOUSE_TOKEN_KEY_FILE") && err.contains("64 hex digits"),
        "{err}"
    );

    let (ok, _, err) = ingest(&run, Some(token_key_file())).await;
    assert!(ok, "{err}");
    let text = table_as_text(&env.db.pool).await;
    assert_absent(&text, "plain-access-token-1");
    assert_absent(&text, "plain-refresh-token-1");
    let mut conn = env.db.pool.acquire().await.unwrap();
    let p = ParticipantId::parse("P001").unwrap();
    let row = store::load(&mut conn, &token_key(), &p, "fitbit")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.access_token, "plain-access-token-1");
    assert_eq!(row.refresh_token.as_deref(), Some("plain-refresh-token-1"));
}

#[test]
fn the_token_types_print_no_token() {
    let response = TokenResponse {
        access_token: "access-secret-1".into(),
        expires_in: 3600,
        refresh_token: Some("refresh-secret-1".into()),
        scope: Some("activity".into()),
        user_id: Some("7QX2LB".into()),
    };
    let grant = NewGrant {
        provider_user_id: Some("7QX2LB"),
        access_token: "access-secret-2",
        refresh_token: Some("refresh-secret-2"),
        expires_at: Utc::now(),
        scope: None,
    };
    let stored = grants::StoredToken {
        participant_id: "P001".into(),
        provider: "fitbit".into(),
        provider_user_id: None,
        access_token: "access-secret-3".into(),
        refresh_token: Some("refresh-secret-3".into()),
        expires_at: Utc::now(),
        scope: None,
        revoked_at: None,
        updated_at: Utc::now(),
    };
    let printed = format!("{response:?} {grant:?} {stored:?} {:?}", token_key());
    assert!(
        printed.contains("7QX2LB") && printed.contains("P001"),
        "{printed}"
    );
    assert!(!printed.contains("secret"), "{printed}");
}
