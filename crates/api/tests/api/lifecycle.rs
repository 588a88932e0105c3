//! Withdrawal, erasure and the participant archive over HTTP: what each answers, the 400s
//! that name the parameter, the 404 for another study's participant, and the audit rows.

use std::collections::BTreeMap;
use std::io::Read as _;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use wearhouse_core::store::users::Role;
use wearhouse_core::testing::TEST_ADMIN_TOKEN;

use crate::access::user_with_token;
use crate::support::*;

async fn post(app: &TestApp, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .post(format!("{}{path}", app.base))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn audit_actions(app: &TestApp, participant: &str) -> Vec<(String, String, Value)> {
    sqlx::query_as(
        "select action, outcome, detail from audit_log where $1 = any(participant_ids)
         order by audit_id",
    )
    .bind(participant)
    .fetch_all(&app.db.as_ref().unwrap().pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_coordinator_withdraws_a_participant_once_and_the_data_stays() {
    let app = spawn_app().await;
    let pool = &app.db.as_ref().unwrap().pool;
    let coordinator =
        user_with_token(&app, "coord@example.org", Role::Coordinator, &["default"]).await;
    let samples = |p: &'static str| async move {
        sqlx::query_scalar::<_, i64>("select count(*) from raw_data where participant_id = $1")
            .bind(p)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    let before = samples("P001").await;

    // The reason is required, and the 400 names it.
    for body in [None, Some(json!({})), Some(json!({"reason": "  "}))] {
        let (status, answer) = post(&app, "/participants/P001/withdraw", &coordinator, body).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["parameter"], "reason", "{answer}");
    }

    sqlx::query(
        "insert into oauth_tokens (participant_id, provider, access_token_sealed, token_key_id,
                                   expires_at)
         values ('P001', 'fitbit', '\\x00', 'test-key', now())",
    )
    .execute(pool)
    .await
    .unwrap();
    let (status, first) = post(
        &app,
        "/participants/P001/withdraw",
        &coordinator,
        Some(json!({"reason": "no longer wishes to take part"})),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["status"], "withdrawn");
    assert_eq!(first["withdrawal_reason"], "no longer wishes to take part");
    assert_eq!(first["withdrawn_by"], "token tests of coord@example.org");
    assert_eq!(
        first["revocation_pending"], true,
        "the ingest revokes: {first}"
    );

    // Twice: the same record.
    let (status, second) = post(
        &app,
        "/participants/P001/withdraw",
        &coordinator,
        Some(json!({"reason": "again"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(second, first);
    assert_eq!(
        samples("P001").await,
        before,
        "the data collected so far stays"
    );

    // Once the ingest has revoked and deleted the grant, nothing is pending.
    sqlx::query("delete from oauth_tokens where participant_id = 'P001'")
        .execute(pool)
        .await
        .unwrap();
    let (_, third) = post(
        &app,
        "/participants/P001/withdraw",
        &coordinator,
        Some(json!({"reason": "again"})),
    )
    .await;
    assert_eq!(third["revocation_pending"], false);

    let (_, detail) = app.get_json("/participants/P001").await;
    assert_eq!(detail["status"], "withdrawn");
    let actions = audit_actions(&app, "P001").await;
    let withdrawals: Vec<&Value> = actions
        .iter()
        .filter(|(a, _, _)| a == "participant_withdrawn")
        .map(|(_, _, d)| d)
        .collect();
    assert_eq!(withdrawals.len(), 3);
    assert_eq!(withdrawals[0]["already_withdrawn"], false);
    assert_eq!(withdrawals[1]["already_withdrawn"], true);
}

#[tokio::test]
async fn another_studys_participant_cannot_be_withdrawn_and_looks_unknown() {
    let app = spawn_app().await;
    let outsider = user_with_token(&app, "c@example.org", Role::Coordinator, &["other"]).await;
    let body = Some(json!({"reason": "r"}));
    let (status, hidden) = post(&app, "/participants/P001/withdraw", &outsider, body.clone()).await;
    assert_eq!(status, 404, "{hidden}");
    let (status, missing) = post(&app, "/participants/P999/withdraw", &outsider, body).await;
    assert_eq!(status, 404);
    assert_eq!(
        hidden.to_string().replace("P001", "X"),
        missing.to_string().replace("P999", "X")
    );
    let (_, detail) = app.get_json("/participants/P001").await;
    assert_eq!(detail["status"], "active");
    // Coordinators may withdraw but not erase or export.
    let (status, _) = post(
        &app,
        "/participants/P001/erase",
        &outsider,
        Some(json!({"confirm": "P001"})),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn erasure_needs_the_typed_id_and_removes_the_participant() {
    let app = spawn_app().await;
    let pool = &app.db.as_ref().unwrap().pool;
    let (status, answer) = post(
        &app,
        "/participants/P001/erase",
        TEST_ADMIN_TOKEN,
        Some(json!({"confirm": "P002"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["parameter"], "confirm");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"P001\""),
        "{answer}"
    );

    // A grant still to be revoked stops it, saying what to do, and the refusal is recorded.
    sqlx::query(
        "insert into oauth_tokens (participant_id, provider, access_token_sealed, token_key_id,
                                   expires_at)
         values ('P001', 'fitbit', '\\x00', 'test-key', now())",
    )
    .execute(pool)
    .await
    .unwrap();
    let confirm = Some(json!({"confirm": "P001"}));
    let (status, answer) = post(
        &app,
        "/participants/P001/erase",
        TEST_ADMIN_TOKEN,
        confirm.clone(),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("withdraw"),
        "{answer}"
    );
    sqlx::query("update oauth_tokens set revoked_at = now() where participant_id = 'P001'")
        .execute(pool)
        .await
        .unwrap();

    let (status, erased) = post(
        &app,
        "/participants/P001/erase",
        TEST_ADMIN_TOKEN,
        confirm.clone(),
    )
    .await;
    assert_eq!(status, 200, "{erased}");
    assert!(erased["rows"]["raw_data"].as_i64().unwrap() > 0, "{erased}");
    assert_eq!(erased["rows"]["participants"], 1);
    let (status, _) = app.get_json("/participants/P001").await;
    assert_eq!(status, 404);
    let left: i64 =
        sqlx::query_scalar("select count(*) from raw_data where participant_id = 'P001'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(left, 0);
    let actions = audit_actions(&app, "P001").await;
    let (_, outcome, detail) = actions
        .iter()
        .find(|(a, _, _)| a == "participant_erased")
        .unwrap();
    assert_eq!(outcome, "ok");
    assert_eq!(detail["rows"], erased["rows"]);
    assert!(
        actions
            .iter()
            .any(|(a, o, _)| a == "participant_erase_refused" && o == "failed")
    );

    let (status, _) = post(&app, "/participants/P001/erase", TEST_ADMIN_TOKEN, confirm).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_export_is_a_zip_whose_manifest_checks_out() {
    let app = spawn_app().await;
    let r = app.get("/participants/P001/export").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/zip");
    let bytes = r.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut files = BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).unwrap();
        files.insert(f.name().unwrap().to_string(), buf);
    }
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest["participant_id"], "P001");
    assert_eq!(manifest["timezone"], "Europe/London");
    let entries = manifest["files"].as_array().unwrap();
    assert_eq!(entries.len() + 1, files.len());
    for e in entries {
        let body = &files[e["name"].as_str().unwrap()];
        assert_eq!(e["sha256"], hex::encode(Sha256::digest(body)), "{e}");
    }
    let steps = entries
        .iter()
        .find(|e| e["name"] == "raw/steps.csv")
        .unwrap();
    assert_eq!(steps["unit"], "steps");
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from raw_data where participant_id = 'P001' and data_type = 'steps'",
    )
    .fetch_one(&app.db.as_ref().unwrap().pool)
    .await
    .unwrap();
    assert_eq!(steps["rows"], stored);
    let actions = audit_actions(&app, "P001").await;
    assert!(
        actions
            .iter()
            .any(|(a, o, _)| a == "participant_exported" && o == "ok")
    );

    let (status, body) = app.get_json("/participants/P999/export").await;
    assert_eq!(status, 404, "{body}");
}
