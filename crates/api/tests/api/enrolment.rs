//! Coordinators enrol participants: adding one (a given or generated pseudonymous id, one of
//! their studies, an IANA time zone), changing their details, and consent links that are shown
//! once, stored as hashes, listed and revoked; each change in the audit trail, and every
//! participant's lifecycle state in the list.

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use wearhouse_api::startup::ServeArgs;
use wearhouse_core::store::users::Role;

use crate::access::user_with_token;
use crate::support::*;

/// `method path` with a JSON body and a bearer token: status and JSON answer.
async fn send(app: &TestApp, method: Method, path: &str, token: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .request(method.clone(), format!("{}{path}", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {path}: {status} is not JSON ({e}): {text}"));
    (status, body)
}

async fn app() -> TestApp {
    let args = ServeArgs {
        enrolment: wearhouse_api::routes::enrolment::EnrolmentArgs {
            public_url: Some("https://study.example.org/".parse().unwrap()),
        },
        ..ServeArgs::default()
    };
    spawn_with(preferred_backend().await, args).await
}

fn parameter(body: &Value) -> &str {
    body["error"]["parameter"].as_str().unwrap_or_default()
}

async fn changes(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "select detail->>'change' from audit_log where action = 'participant_changed' order by audit_id",
    )
    .fetch_all(&app.db.as_ref().unwrap().pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_coordinator_adds_participants_to_their_studies_with_their_details_checked() {
    let app = app().await;
    let coordinator = user_with_token(&app, "c@example.org", Role::Coordinator, &["default"]).await;
    let post = |body: Value| send(&app, Method::POST, "/participants", &coordinator, body);

    let (status, body) = post(json!({
        "study_id": "default",
        "timezone": "Europe/London",
        "contact_name": " Ada ",
        "contact_email": "ada@example.org",
    }))
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["participant_id"].as_str().unwrap().to_owned();
    let (prefix, code) = id.split_once('-').unwrap();
    assert_eq!(prefix, "DEFAULT");
    assert!(
        code.len() == 6 && !code.contains(['0', 'O', '1', 'I', 'L']),
        "{id}"
    );
    assert_eq!(body["state"], "invited");
    assert_eq!(body["timezone"], "Europe/London");
    assert_eq!(body["contact"]["name"], "Ada");
    assert_eq!(body["contact"]["email"], "ada@example.org");

    let (status, body) =
        post(json!({"participant_id": "N-1", "study_id": "default", "timezone": "UTC"})).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        post(json!({"participant_id": "N-1", "study_id": "default", "timezone": "UTC"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    // An id taken in a study the coordinator cannot see is a conflict too: ids are global.
    let (status, _) =
        post(json!({"participant_id": "P001", "study_id": "default", "timezone": "UTC"})).await;
    assert_eq!(status, 409);

    for (body, named) in [
        (
            json!({"study_id": "default", "timezone": "Mars/Olympus"}),
            "timezone",
        ),
        (json!({"study_id": "default"}), "timezone"),
        (json!({"study_id": "other", "timezone": "UTC"}), "study_id"),
        (
            json!({"study_id": "default", "timezone": "UTC", "participant_id": "a b"}),
            "participant_id",
        ),
        (
            json!({"study_id": "default", "timezone": "UTC", "contact_email": "ada"}),
            "contact_email",
        ),
        (json!({"study_id": 7, "timezone": "UTC"}), "study_id"),
    ] {
        let (status, answer) = post(body.clone()).await;
        assert_eq!(
            (status, parameter(&answer)),
            (400, named),
            "{body}: {answer}"
        );
    }

    // Details change; a contact detail set to null is cleared.
    let (status, body) = send(
        &app,
        Method::PATCH,
        &format!("/participants/{id}"),
        &coordinator,
        json!({"timezone": "Asia/Tokyo", "contact_name": null}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["timezone"], "Asia/Tokyo");
    assert_eq!(body["contact"]["name"], Value::Null);
    assert_eq!(body["contact"]["email"], "ada@example.org");

    // The list says where each stands: the seeded ones are active, the new ones invited.
    let (_, list) = app.get_json("/participants").await;
    let state = |pid: &str| {
        list["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["participant_id"] == pid)
            .map(|p| p["state"].as_str().unwrap().to_owned())
    };
    assert_eq!(state("P001").as_deref(), Some("active"));
    assert_eq!(state(&id).as_deref(), Some("invited"));
    let p001 = list["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["participant_id"] == "P001")
        .unwrap();
    assert!(p001["last_data_at"].as_str().is_some(), "{p001}");

    assert_eq!(changes(&app).await, ["created", "created", "details"]);
}

#[tokio::test]
async fn a_consent_link_is_shown_once_stored_as_a_hash_listed_and_revoked() {
    let app = app().await;
    let pool = &app.db.as_ref().unwrap().pool;
    let coordinator = user_with_token(&app, "c@example.org", Role::Coordinator, &["default"]).await;
    let path = "/participants/P003/consent-links";

    let (status, link) = send(
        &app,
        Method::POST,
        path,
        &coordinator,
        json!({"provider": "fitbit"}),
    )
    .await;
    assert_eq!(status, 201, "{link}");
    let url = link["url"].as_str().unwrap();
    let token = url
        .strip_prefix("https://study.example.org/consent/")
        .unwrap();
    assert_eq!(token.len(), 43, "256 random bits, base64url");
    assert_eq!(link["state"], "open");
    assert_eq!(link["allow_account_change"], false);
    let hours = (link["expires_at"]
        .as_str()
        .unwrap()
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap()
        - chrono::Utc::now())
    .num_minutes();
    assert!((71 * 60..=72 * 60).contains(&hours), "{hours} min");
    let stored: Vec<u8> = sqlx::query_scalar("select token_hash from consent_links")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(stored, Sha256::digest(token.as_bytes()).to_vec());
    let anywhere: i64 = sqlx::query_scalar(
        "select count(*) from consent_links l where strpos(row_to_json(l)::text, $1) > 0",
    )
    .bind(token)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(anywhere, 0, "the token itself is stored nowhere in the row");

    let (status, body) = send(
        &app,
        Method::POST,
        path,
        &coordinator,
        json!({"provider": "google-health", "allow_account_change": true, "expires_in_hours": 336}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for (body, named) in [
        (json!({"provider": "garmin"}), "provider"),
        (json!({}), "provider"),
        (
            json!({"provider": "fitbit", "expires_in_hours": 337}),
            "expires_in_hours",
        ),
        (
            json!({"provider": "fitbit", "expires_in_hours": 0}),
            "expires_in_hours",
        ),
        (
            json!({"provider": "fitbit", "allow_account_change": "yes"}),
            "allow_account_change",
        ),
    ] {
        let (status, answer) = send(&app, Method::POST, path, &coordinator, body.clone()).await;
        assert_eq!(
            (status, parameter(&answer)),
            (400, named),
            "{body}: {answer}"
        );
    }

    // Listed newest first, never with the URL.
    let (status, list) = send(&app, Method::GET, path, &coordinator, json!(null)).await;
    assert_eq!(status, 200);
    let links = list["links"].as_array().unwrap();
    assert_eq!(links.len(), 2);
    assert_eq!(links[0]["provider"], "google-health");
    assert!(links.iter().all(|l| l.get("url").is_none()));
    assert!(!list.to_string().contains(token));

    // Revoked once; revoking again changes nothing; an unknown link is 404.
    let id = link["link_id"].as_i64().unwrap();
    let one = format!("{path}/{id}");
    let (status, revoked) = send(&app, Method::DELETE, &one, &coordinator, json!(null)).await;
    assert_eq!((status, revoked["state"].as_str()), (200, Some("revoked")));
    let (status, again) = send(&app, Method::DELETE, &one, &coordinator, json!(null)).await;
    assert_eq!(
        (status, &again["revoked_at"]),
        (200, &revoked["revoked_at"])
    );
    let (status, _) = send(
        &app,
        Method::DELETE,
        &format!("{path}/999"),
        &coordinator,
        json!(null),
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("{path}/x"),
        &coordinator,
        json!(null),
    )
    .await;
    assert_eq!((status, parameter(&body)), (400, "link_id"));
    // A used link cannot be revoked: the participant has consented.
    sqlx::query("update consent_links set used_at = now() where link_id <> $1")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    let used = links[0]["link_id"].as_i64().unwrap();
    let (status, body) = send(
        &app,
        Method::DELETE,
        &format!("{path}/{used}"),
        &coordinator,
        json!(null),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );

    // A withdrawn participant gets no new link.
    sqlx::query("update participants set status = 'withdrawn' where participant_id = 'P003'")
        .execute(pool)
        .await
        .unwrap();
    let (status, _) = send(
        &app,
        Method::POST,
        path,
        &coordinator,
        json!({"provider": "fitbit"}),
    )
    .await;
    assert_eq!(status, 409);

    assert_eq!(
        changes(&app).await,
        [
            "consent_link_created",
            "consent_link_created",
            "consent_link_revoked"
        ]
    );
}

#[tokio::test]
async fn another_studys_participant_is_answered_as_missing_and_without_a_host_the_link_follows_the_proxy()
 {
    let app = spawn_app().await;
    let other = user_with_token(&app, "o@example.org", Role::Coordinator, &["other"]).await;
    for (method, path, body) in [
        (
            Method::POST,
            "/participants/P001/consent-links",
            json!({"provider": "fitbit"}),
        ),
        (Method::GET, "/participants/P001/consent-links", json!(null)),
        (
            Method::PATCH,
            "/participants/P001",
            json!({"timezone": "UTC"}),
        ),
    ] {
        let (status, answer) = send(&app, method.clone(), path, &other, body).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }

    // Without WEARHOUSE_PUBLIC_URL the link is built from what nginx forwards.
    let own = user_with_token(&app, "c@example.org", Role::Coordinator, &["default"]).await;
    let r = reqwest::Client::new()
        .post(format!("{}/participants/P001/consent-links", app.base))
        .bearer_auth(&own)
        .header("x-forwarded-host", "wearhouse.example.org:8443")
        .header("x-forwarded-proto", "https")
        .json(&json!({"provider": "fitbit"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["url"]
            .as_str()
            .unwrap()
            .starts_with("https://wearhouse.example.org:8443/consent/"),
        "{body}"
    );
}

/// A coordinator sets where a participant's history starts (before enrolment): a bad or
/// future day is a 400 naming `backfill_from`; an earlier start moves the participant's
/// watermarks back (through the API's own role); `null` returns to the default.
#[tokio::test]
async fn a_coordinator_sets_a_backfill_start_and_an_earlier_one_moves_the_watermarks_back() {
    let app = app().await;
    let coordinator = user_with_token(&app, "c@example.org", Role::Coordinator, &["default"]).await;
    let pool = &app.db.as_ref().unwrap().pool;
    sqlx::query(
        "insert into ingest_state (participant_id, source, data_type, watermark)
         values ('P001', 'fitbit', 'steps', '2025-06-10 00:00 UTC')",
    )
    .execute(pool)
    .await
    .unwrap();
    let patch = |body: Value| {
        send(
            &app,
            Method::PATCH,
            "/participants/P001",
            &coordinator,
            body,
        )
    };

    for bad in [json!("2025-13-01"), json!("yesterday"), json!("2999-01-01")] {
        let (status, answer) = patch(json!({ "backfill_from": bad })).await;
        assert_eq!(
            (status, parameter(&answer)),
            (400, "backfill_from"),
            "{bad}: {answer}"
        );
    }
    let (status, body) = patch(json!({"backfill_from": "2025-01-01"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["backfill_from"], "2025-01-01");
    let (mark, zone): (chrono::DateTime<chrono::Utc>, String) = sqlx::query_as(
        "select s.watermark, p.timezone from ingest_state s join participants p using (participant_id)
         where participant_id = 'P001'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let zone: chrono_tz::Tz = zone.parse().unwrap();
    assert_eq!(
        mark.with_timezone(&zone).naive_local().to_string(),
        "2025-01-01 00:00:00",
        "moved back to the local start of the new first day"
    );
    let (status, body) = patch(json!({"backfill_from": null})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["backfill_from"], Value::Null);

    // A participant added with a start of their own.
    let add = |backfill: &str| {
        send(
            &app,
            Method::POST,
            "/participants",
            &coordinator,
            json!({"study_id": "default", "timezone": "Europe/London", "backfill_from": backfill}),
        )
    };
    let (status, answer) = add("2999-01-01").await;
    assert_eq!(
        (status, parameter(&answer)),
        (400, "backfill_from"),
        "{answer}"
    );
    let (status, body) = add("2026-01-15").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["backfill_from"], "2026-01-15");
    let audited: Vec<Value> = sqlx::query_scalar(
        "select detail from audit_log where action = 'participant_changed' order by audit_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(audited[0]["backfill_from"], "2025-01-01");
    assert_eq!(audited[0]["watermarks_moved"], 1);
}
