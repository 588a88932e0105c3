//! The administration commands as an operator runs them: studies, users, tokens printed once
//! and stored only as hashes, and `audit verify` catching a row altered or removed by a
//! superuser. Also: the API's own database role may not touch the audit trail or the grants.

use std::process::Command;

use reqwest::Method;
use sha2::{Digest as _, Sha256};

use crate::support::*;

/// Runs `wearhouse-api <args>` against the app's database; success and stdout + stderr.
fn cli(app: &TestApp, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wearhouse-api"))
        .args(args)
        .env("DATABASE_URL", &app.db.as_ref().unwrap().url)
        .env("USER", "operator")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn last_line(text: &str) -> String {
    text.trim_end().lines().last().unwrap().trim().to_owned()
}

async fn get(app: &TestApp, path: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .request(Method::GET, format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn studies_users_and_tokens_from_the_command_line() {
    let app = spawn_app().await;
    let pool = &app.db.as_ref().unwrap().pool;

    let (ok, out) = cli(
        &app,
        &["study", "add", "--id", "trial-2", "--name", "Second trial"],
    );
    assert!(ok, "{out}");
    let (ok, out) = cli(
        &app,
        &["study", "add", "--id", "trial-2", "--name", "Again"],
    );
    assert!(!ok && out.contains("exists already"), "{out}");
    let (ok, out) = cli(&app, &["study", "add", "--id", "no spaces", "--name", "X"]);
    assert!(!ok && out.contains("not a study id"), "{out}");
    let (ok, out) = cli(&app, &["study", "list"]);
    assert!(
        ok && out.contains("trial-2") && out.contains("Second trial"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("default") && l.contains(" 3 ")),
        "{out}"
    );

    // Without a password file, a generated password is printed once.
    let (ok, out) = cli(
        &app,
        &[
            "user",
            "add",
            "--email",
            "r@example.org",
            "--role",
            "researcher",
            "--study",
            "trial-2",
        ],
    );
    assert!(ok, "{out}");
    let password = last_line(&out);
    assert_eq!(password.len(), 24, "{out}");
    let stored: String =
        sqlx::query_scalar("select password_hash from users where email = 'r@example.org'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(stored.starts_with("$argon2id$") && !stored.contains(&password));
    let (ok, out) = cli(
        &app,
        &["user", "add", "--email", "x@example.org", "--role", "boss"],
    );
    assert!(!ok && out.contains("boss"), "{out}");
    let (ok, out) = cli(
        &app,
        &[
            "user",
            "add",
            "--email",
            "x@example.org",
            "--role",
            "analyst",
            "--study",
            "nope",
        ],
    );
    assert!(!ok && out.contains("no such study: nope"), "{out}");
    let short = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(short.path(), "short\n").unwrap();
    let (ok, out) = cli(
        &app,
        &[
            "user",
            "add",
            "--email",
            "x@example.org",
            "--role",
            "analyst",
            "--password-file",
            short.path().to_str().unwrap(),
        ],
    );
    assert!(!ok && out.contains("too short"), "{out}");

    // A token is printed once, as the last line, and only its hash is stored.
    let (ok, out) = cli(
        &app,
        &[
            "token",
            "create",
            "--email",
            "r@example.org",
            "--name",
            "notebook",
            "--expires-in-days",
            "30",
        ],
    );
    assert!(ok, "{out}");
    let token = last_line(&out);
    assert!(token.starts_with("wh_"), "{out}");
    let hash = Sha256::digest(token.as_bytes()).to_vec();
    let (matching, containing): (i64, i64) = sqlx::query_as(
        "select count(*) filter (where token_hash = $1),
                count(*) filter (where position($2 in t::text) > 0)
         from api_tokens t",
    )
    .bind(&hash)
    .bind(&token)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((matching, containing), (1, 0));
    let (ok, out) = cli(&app, &["token", "list"]);
    assert!(
        ok && out.contains("notebook") && out.contains("live") && !out.contains(&token),
        "{out}"
    );

    // The token works for the user's study, not for another.
    sqlx::query("insert into participants (participant_id, study_id) values ('T001', 'trial-2')")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(get(&app, "/participants/T001", &token).await, 200);
    assert_eq!(get(&app, "/participants/P001", &token).await, 404);
    let (ok, out) = cli(
        &app,
        &[
            "user",
            "grant",
            "--email",
            "r@example.org",
            "--study",
            "default",
        ],
    );
    assert!(ok && out.contains("default, trial-2"), "{out}");
    assert_eq!(get(&app, "/participants/P001", &token).await, 200);
    let (ok, out) = cli(
        &app,
        &[
            "user",
            "revoke",
            "--email",
            "r@example.org",
            "--study",
            "default",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(get(&app, "/participants/P001", &token).await, 404);

    // Disabling the user stops the token; enabling brings it back; revoking ends it.
    let (ok, _) = cli(&app, &["user", "disable", "--email", "r@example.org"]);
    assert!(ok);
    assert_eq!(get(&app, "/participants/T001", &token).await, 401);
    let (ok, out) = cli(&app, &["user", "list"]);
    assert!(
        ok && out
            .lines()
            .any(|l| l.contains("r@example.org") && l.contains("disabled")),
        "{out}"
    );
    let (ok, _) = cli(&app, &["user", "enable", "--email", "r@example.org"]);
    assert!(ok);
    assert_eq!(get(&app, "/participants/T001", &token).await, 200);
    let (ok, out) = cli(
        &app,
        &[
            "token",
            "revoke",
            "--email",
            "r@example.org",
            "--name",
            "notebook",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(get(&app, "/participants/T001", &token).await, 401);
    let (ok, out) = cli(&app, &["token", "list", "--email", "r@example.org"]);
    assert!(ok && out.contains("revoked"), "{out}");

    // An expired token is refused.
    let (ok, out) = cli(
        &app,
        &[
            "token",
            "create",
            "--email",
            "r@example.org",
            "--name",
            "short",
        ],
    );
    assert!(ok, "{out}");
    let short_token = last_line(&out);
    assert_eq!(get(&app, "/participants/T001", &short_token).await, 200);
    sqlx::query(
        "update api_tokens set expires_at = now() - interval '1 second' where name = 'short'",
    )
    .execute(pool)
    .await
    .unwrap();
    assert_eq!(get(&app, "/participants/T001", &short_token).await, 401);

    // Every change is in the audit trail, by the operating-system user.
    let changes: Vec<(String, String)> = sqlx::query_as(
        "select action, actor from audit_log where action in ('study_changed', 'user_changed', 'token_changed') order by audit_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let kinds: Vec<&str> = changes.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "study_changed",
            "user_changed",
            "token_changed",
            "user_changed",
            "user_changed",
            "user_changed",
            "user_changed",
            "token_changed",
            "token_changed"
        ]
    );
    assert!(changes.iter().all(|c| c.1 == "cli operator"), "{changes:?}");
}

#[tokio::test]
async fn audit_verify_passes_and_then_names_the_row_a_superuser_altered_or_removed() {
    let app = spawn_app().await;
    let pool = &app.db.as_ref().unwrap().pool;
    for p in ["P001", "P002", "P003", "P001"] {
        let (status, _) = app.get_json(&format!("/participants/{p}")).await;
        assert_eq!(status, 200);
    }
    let (ok, out) = cli(&app, &["audit", "verify"]);
    assert!(ok && out.contains("intact: 4 rows"), "{out}");

    // Not through SQL, even for the owner, while the trigger stands.
    let refused = sqlx::query("update audit_log set actor = 'someone else'")
        .execute(pool)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    let refused = sqlx::query("delete from audit_log")
        .execute(pool)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");

    // A superuser who turns the trigger off can alter a row; verify names it.
    let ids: Vec<i64> = sqlx::query_scalar("select audit_id from audit_log order by audit_id")
        .fetch_all(pool)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("set session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("update audit_log set participant_ids = '{P009}' where audit_id = $1")
        .bind(ids[1])
        .execute(&mut *conn)
        .await
        .unwrap();
    let (ok, out) = cli(&app, &["audit", "verify"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("BROKEN at row {}", ids[1])) && out.contains("altered"),
        "{out}"
    );

    // Putting it back and removing another row instead: the row after the gap is named.
    sqlx::query("update audit_log set participant_ids = '{P002}' where audit_id = $1")
        .bind(ids[1])
        .execute(&mut *conn)
        .await
        .unwrap();
    let (ok, out) = cli(&app, &["audit", "verify"]);
    assert!(ok, "{out}");
    sqlx::query("delete from audit_log where audit_id = $1")
        .bind(ids[2])
        .execute(&mut *conn)
        .await
        .unwrap();
    let (ok, out) = cli(&app, &["audit", "verify"]);
    assert!(
        !ok && out.contains(&format!("BROKEN at row {}", ids[3])) && out.contains("removed"),
        "{out}"
    );
}

#[tokio::test]
async fn the_apis_database_role_cannot_touch_the_audit_trail_or_the_grants() {
    let app = spawn_app().await;
    let pool = &app.db.as_ref().unwrap().pool;
    let (status, _) = app.get_json("/participants").await;
    assert_eq!(status, 200);
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("set role wearhouse_api")
        .execute(&mut *conn)
        .await
        .unwrap();
    for sql in [
        "update audit_log set actor = 'x'",
        "delete from audit_log",
        "insert into audit_log (audit_id, at, actor, action, outcome, prev_hash, hash) values (99, now(), 'x', 'x', 'ok', '', '')",
        "select * from oauth_tokens",
        "update participants set study_id = 'demo'",
        "delete from users",
        "insert into api_tokens (user_id, name, token_hash) values (1, 'x', '')",
    ] {
        let e = sqlx::query(sql).execute(&mut *conn).await.unwrap_err();
        assert!(e.to_string().contains("permission denied"), "{sql}: {e}");
    }
    // It appends through the chain's function only.
    let id: i64 = sqlx::query_scalar(
        "select audit_append(null, 'x', 'login', null, null, null, null, 'ok', null)",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert!(id > 0);
    let (ok, out) = cli(&app, &["audit", "verify"]);
    assert!(ok, "{out}");
}

#[tokio::test]
async fn a_study_s_metrics_are_set_from_the_command_line_and_audited() {
    let app = spawn_app().await;
    let pool = &app.db.as_ref().unwrap().pool;
    let metrics = || async {
        sqlx::query_scalar::<_, Option<Vec<String>>>(
            "select metrics from studies where study_id = 'default'",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    };
    assert_eq!(metrics().await, None, "a new study collects everything");

    let (ok, out) = cli(
        &app,
        &[
            "study",
            "set-metrics",
            "--study",
            "default",
            "--metrics",
            "steps,heart_rate,steps",
        ],
    );
    assert!(ok && out.contains("collects heart_rate, steps"), "{out}");
    assert_eq!(
        metrics().await,
        Some(vec!["heart_rate".to_owned(), "steps".to_owned()])
    );

    let (ok, out) = cli(
        &app,
        &[
            "study",
            "set-metrics",
            "--study",
            "default",
            "--metrics",
            "heartrate",
        ],
    );
    assert!(
        !ok && out.contains("heartrate"),
        "names the bad value: {out}"
    );
    let (ok, out) = cli(
        &app,
        &[
            "study",
            "set-metrics",
            "--study",
            "nope",
            "--metrics",
            "steps",
        ],
    );
    assert!(!ok && out.contains("no study \"nope\""), "{out}");
    let (ok, out) = cli(&app, &["study", "set-metrics", "--study", "default"]);
    assert!(
        !ok && out.contains("--metrics"),
        "says what is missing: {out}"
    );
    assert_eq!(metrics().await.map(|m| m.len()), Some(2), "unchanged");

    let (ok, out) = cli(
        &app,
        &["study", "set-metrics", "--study", "default", "--all"],
    );
    assert!(ok && out.contains("every metric"), "{out}");
    assert_eq!(metrics().await, None);

    let details: Vec<serde_json::Value> = sqlx::query_scalar(
        "select detail from audit_log
         where action = 'study_changed' and detail->>'change' = 'metrics' order by audit_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(details.len(), 2, "{details:?}");
    assert_eq!(
        details[0]["metrics"],
        serde_json::json!(["heart_rate", "steps"])
    );
    assert_eq!(details[1]["metrics"], serde_json::Value::Null);
    assert_eq!(
        details[1]["previous"],
        serde_json::json!(["heart_rate", "steps"])
    );
}
