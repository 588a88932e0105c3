//! Who may see what: every route refuses a caller without credentials unless it is public by
//! design, every role gets exactly what the permission matrix gives it, a caller sees only the
//! participants of their studies, and every read of participant data leaves an audit row.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use wearhouse_core::store::credentials;
use wearhouse_core::store::users::{self, NewUser, Role};

use crate::support::*;

/// The routes anyone may call, by design.
const PUBLIC: [&str; 10] = [
    "/health",
    "/ready",
    "/openapi.json",
    "/docs",
    "/docs/swagger-ui-bundle.js",
    "/docs/swagger-ui.css",
    "/auth/login",
    "/auth/providers",
    "/auth/oidc/start",
    "/auth/oidc/callback",
];

/// The permission matrix as the README states it: method and route → the roles that may call
/// it (any signed-in user for `ALL`).
const ALL: &[&str] = &["admin", "coordinator", "researcher", "analyst"];
/// Who may add participants, change their details and handle consent links.
const MANAGE: &[&str] = &["admin", "coordinator"];
fn allowed(method: &Method, route: &str) -> &'static [&'static str] {
    match (method.as_str(), route) {
        ("POST", "/participants") | ("PATCH", "/participants/{id}") => MANAGE,
        (_, "/participants/{id}/consent-links" | "/participants/{id}/consent-links/{link_id}") => {
            MANAGE
        }
        (_, route) => allowed_any_method(route),
    }
}

fn allowed_any_method(route: &str) -> &'static [&'static str] {
    match route {
        "/data" => &["admin", "researcher", "analyst"],
        "/data.csv" | "/export/fhir" | "/export/omh" => &["admin", "researcher"],
        "/data/run_imputation" => &["admin", "researcher"],
        "/data/imputation_jobs/{id}" => &["admin", "researcher", "analyst"],
        "/participants" | "/participants/{id}" => ALL,
        "/participants/{id}/withdraw" => &["admin", "coordinator"],
        "/participants/{id}/erase" | "/participants/{id}/export" => &["admin"],
        "/contact" => &["admin", "researcher"],
        "/audit" | "/metrics" => &["admin"],
        "/metrics-catalog" | "/auth/me" | "/auth/logout" => ALL,
        "/auth/check/grafana" => &["admin", "researcher", "analyst"],
        "/auth/check/operations" => &["admin"],
        other => panic!("{other} is missing from the test's permission matrix"),
    }
}

/// A user of `role` in `studies` and an API token of theirs.
pub async fn user_with_token(app: &TestApp, email: &str, role: Role, studies: &[&str]) -> String {
    let pool = &app.db.as_ref().unwrap().pool;
    let mut conn = pool.acquire().await.unwrap();
    for s in studies {
        sqlx::query("insert into studies (study_id, name) values ($1, $1) on conflict do nothing")
            .bind(s)
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    let studies: Vec<String> = studies.iter().map(|s| s.to_string()).collect();
    let user = users::add(
        &mut conn,
        &NewUser {
            email,
            role,
            studies: &studies,
            password_hash: None,
        },
    )
    .await
    .unwrap();
    credentials::create_token(&mut conn, user.user_id, "tests", None)
        .await
        .unwrap()
        .1
}

/// A request to `path` with this method, optionally with a bearer token.
async fn call(app: &TestApp, method: &Method, path: &str, token: Option<&str>) -> (u16, String) {
    let mut r = reqwest::Client::new().request(method.clone(), format!("{}{path}", app.base));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A concrete path for a route template.
fn concrete(template: &str) -> String {
    template
        .replace("{id}", "P001")
        .replace("{link_id}", "1")
        .replace(
            "/data/imputation_jobs/P001",
            "/data/imputation_jobs/00000000-0000-4000-8000-000000000000",
        )
}

/// Every operation of the OpenAPI document and every route of the router, with the method to
/// call it by.
async fn operations(app: &TestApp) -> BTreeSet<(String, String)> {
    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((path.clone(), method.to_uppercase()));
        }
    }
    // Routes the document does not describe (the docs pages, the contact form's page).
    for template in wearhouse_api::routes::routes().access().templates() {
        if !ops.iter().any(|(p, _)| p == template) {
            ops.insert((template.to_string(), "GET".into()));
        }
    }
    ops
}

#[tokio::test]
async fn every_route_but_the_public_ones_answers_401_without_credentials() {
    let app = spawn_app().await;
    let ops = operations(&app).await;
    assert!(ops.len() >= 18, "{ops:?}");
    for (template, method) in &ops {
        let method: Method = method.parse().unwrap();
        let (status, body) = call(&app, &method, &concrete(template), None).await;
        if PUBLIC.contains(&template.as_str()) {
            assert_ne!(status, 401, "{method} {template} is public: {body}");
        } else {
            assert_eq!(
                status, 401,
                "{method} {template} without credentials: {body}"
            );
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                body["error"]["code"], "unauthenticated",
                "{method} {template}"
            );
            // A token that is not one is refused the same way.
            let (status, _) = call(&app, &method, &concrete(template), Some("wh_forged")).await;
            assert_eq!(status, 401, "{method} {template} with a forged token");
        }
    }
    // The document declares how to authenticate.
    let (_, doc) = app.get_json("/openapi.json").await;
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["token"]["scheme"], "bearer", "{schemes}");
    assert_eq!(schemes["session"]["in"], "cookie", "{schemes}");
}

#[tokio::test]
async fn each_role_reaches_exactly_the_routes_the_matrix_gives_it() {
    let app = spawn_app().await;
    let ops = operations(&app).await;
    for role in Role::ALL {
        let email = format!("{role}@example.org");
        let token = user_with_token(&app, &email, role, &["default"]).await;
        for (template, method) in &ops {
            if PUBLIC.contains(&template.as_str()) || template == "/auth/logout" {
                continue;
            }
            let method: Method = method.parse().unwrap();
            let (status, body) = call(&app, &method, &concrete(template), Some(&token)).await;
            if allowed(&method, template).contains(&role.name()) {
                assert!(
                    status != 401 && status != 403,
                    "{role} may {method} {template}: {status} {body}"
                );
            } else {
                assert_eq!(status, 403, "{role} may not {method} {template}: {body}");
                let body: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(body["error"]["code"], "forbidden");
            }
        }
        // Asking for CSV through /data is an export too.
        let r = reqwest::Client::new()
            .get(format!(
                "{}/data?participant_id=P001&metric=steps&start_date=2025-06-01&end_date=2025-06-02",
                app.base
            ))
            .bearer_auth(&token)
            .header("accept", "text/csv")
            .send()
            .await
            .unwrap();
        let may_export = allowed(&Method::GET, "/data.csv").contains(&role.name());
        let may_read = allowed(&Method::GET, "/data").contains(&role.name());
        let expected = match (may_read, may_export) {
            (true, true) => StatusCode::OK,
            _ => StatusCode::FORBIDDEN,
        };
        assert_eq!(r.status(), expected, "{role}: CSV through /data");
    }
}

async fn audit_rows(app: &TestApp, action: &str) -> Vec<(String, Vec<String>, String)> {
    sqlx::query_as(
        "select actor, participant_ids, outcome from audit_log where action = $1 order by audit_id",
    )
    .bind(action)
    .fetch_all(&app.db.as_ref().unwrap().pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_caller_sees_only_their_studies_and_every_read_is_recorded() {
    let app = spawn_app().await;
    let pool = &app.db.as_ref().unwrap().pool;
    let own = user_with_token(&app, "own@example.org", Role::Researcher, &["default"]).await;
    let other = user_with_token(&app, "other@example.org", Role::Researcher, &["other"]).await;
    sqlx::query("insert into participants (participant_id, study_id) values ('Q001', 'other')")
        .execute(pool)
        .await
        .unwrap();
    let q = "metric=steps&start_date=2025-06-01&end_date=2025-06-02";

    // Their own participant: data, and an audit row naming the token, its user and P001.
    let (status, body) = call(
        &app,
        &Method::GET,
        &format!("/data?participant_id=P001&{q}"),
        Some(&own),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rows = audit_rows(&app, "read_series").await;
    assert_eq!(
        rows,
        [(
            "token tests of own@example.org".to_owned(),
            vec!["P001".to_owned()],
            "ok".to_owned()
        )]
    );

    // Another study's participant is answered as one that does not exist, and the refusal is
    // recorded.
    let (status, body) = call(
        &app,
        &Method::GET,
        &format!("/data?participant_id=P001&{q}"),
        Some(&other),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (missing_status, missing) = call(
        &app,
        &Method::GET,
        &format!("/data?participant_id=P999&{q}"),
        Some(&other),
    )
    .await;
    assert_eq!(missing_status, 404);
    let strip = |s: &str| s.replace("P001", "X").replace("P999", "X");
    assert_eq!(strip(&body), strip(&missing), "existence must not leak");
    let rows = audit_rows(&app, "read_series").await;
    assert_eq!(
        rows.last().unwrap(),
        &(
            "token tests of other@example.org".to_owned(),
            vec!["P001".to_owned()],
            "denied".to_owned()
        )
    );
    // A multi-participant query is refused if any participant is outside the caller's studies.
    let (status, _) = call(
        &app,
        &Method::GET,
        &format!("/data?participant_id=Q001,P001&{q}"),
        Some(&other),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        &Method::GET,
        &format!("/data.csv?participant_id=P001&{q}"),
        Some(&other),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, &Method::GET, "/participants/P001", Some(&other)).await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        &Method::POST,
        "/data/run_imputation?participant_id=P001&metric=heart_rate",
        Some(&other),
    )
    .await;
    assert_eq!(status, 404);

    // The participant list holds only the caller's studies.
    let (_, body) = call(&app, &Method::GET, "/participants", Some(&other)).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<&str> = body["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["participant_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["Q001"]);
    assert_eq!(body["total_count"], 1);
    let (_, body) = call(&app, &Method::GET, "/participants", Some(&own)).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["total_count"], 3);

    // Exports, participant reads and imputation requests are recorded too.
    let (status, _) = call(
        &app,
        &Method::GET,
        &format!("/data.csv?participant_id=P002&{q}"),
        Some(&own),
    )
    .await;
    assert_eq!(status, 200);
    let exports = audit_rows(&app, "export").await;
    assert_eq!(
        exports[0].1,
        ["P001"],
        "the refused export of another study's participant"
    );
    assert_eq!(exports[0].2, "denied");
    assert_eq!(exports.last().unwrap().1, ["P002"]);
    assert_eq!(exports.last().unwrap().2, "ok");
    let (status, _) = call(&app, &Method::GET, "/participants/P003", Some(&own)).await;
    assert_eq!(status, 200);
    let reads = audit_rows(&app, "read_participant").await;
    assert_eq!(
        reads[0],
        (
            "token tests of other@example.org".to_owned(),
            vec!["P001".to_owned()],
            "denied".to_owned()
        )
    );
    assert_eq!(reads.last().unwrap().1, ["P003"]);
    let (status, body) = call(
        &app,
        &Method::POST,
        "/data/run_imputation?participant_id=P001&metric=heart_rate",
        Some(&own),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let job: Value = serde_json::from_str(&body).unwrap();
    let recorded: Value = sqlx::query_scalar(
        "select detail from audit_log where action = 'imputation_requested' and outcome = 'ok'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(recorded["job_id"], job["job_id"]);
    // Another study's researcher cannot follow that job either.
    let (status, _) = call(
        &app,
        &Method::GET,
        &format!("/data/imputation_jobs/{}", job["job_id"].as_str().unwrap()),
        Some(&other),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn contact_details_reach_coordinators_and_admins_and_never_analysts() {
    let app = spawn_app().await;
    let pool = &app.db.as_ref().unwrap().pool;
    sqlx::query("update participants set contact_name = 'Ada', contact_email = 'ada@example.org' where participant_id = 'P001'")
        .execute(pool)
        .await
        .unwrap();
    for (role, sees) in [
        (Role::Coordinator, true),
        (Role::Admin, true),
        (Role::Researcher, false),
        (Role::Analyst, false),
    ] {
        let token = user_with_token(&app, &format!("{role}@example.org"), role, &["default"]).await;
        for path in ["/participants", "/participants/P001"] {
            let (status, body) = call(&app, &Method::GET, path, Some(&token)).await;
            assert_eq!(status, 200, "{role} {path}: {body}");
            assert_eq!(
                body.contains("ada@example.org"),
                sees,
                "{role} {path}: {body}"
            );
        }
    }
}

#[tokio::test]
async fn the_audit_trail_is_for_admins_filtered_and_as_csv() {
    let app = spawn_app().await;
    let researcher = user_with_token(&app, "r@example.org", Role::Researcher, &["default"]).await;
    let q = "metric=steps&start_date=2025-06-01&end_date=2025-06-02";
    for p in ["P001", "P002", "P001"] {
        let (status, _) = call(
            &app,
            &Method::GET,
            &format!("/data?participant_id={p}&{q}"),
            Some(&researcher),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, _) = call(&app, &Method::GET, "/audit", Some(&researcher)).await;
    assert_eq!(status, 403);
    let (status, page) = app
        .get_json("/audit?participant_id=P001&action=read_series")
        .await;
    assert_eq!(status, 200, "{page}");
    let rows = page["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{page}");
    assert!(
        rows[0]["audit_id"].as_i64() > rows[1]["audit_id"].as_i64(),
        "newest first"
    );
    assert_eq!(rows[0]["actor"], "token tests of r@example.org");
    assert!(
        rows[0]["request_id"]
            .as_str()
            .is_some_and(|r| r.len() == 36)
    );
    assert_eq!(rows[0]["client_addr"], "127.0.0.1");
    let (_, page) = app.get_json("/audit?actor=r@example.org&limit=1").await;
    assert_eq!(page["rows"].as_array().unwrap().len(), 1);
    let before = page["next_before"].as_i64().unwrap();
    let (_, next) = app
        .get_json(&format!(
            "/audit?actor=r@example.org&limit=1&before={before}"
        ))
        .await;
    assert!(next["rows"][0]["audit_id"].as_i64().unwrap() < before);
    let (status, body) = app.get_json("/audit?from=yesterday").await;
    assert_eq!((status, &body["error"]["parameter"]), (400, &"from".into()));
    let csv = app
        .client
        .get(format!("{}/audit?participant_id=P002", app.base))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("audit_id,at,actor_user_id,actor,action")
    );
    assert_eq!(
        lines.filter(|l| l.contains("read_series")).count(),
        1,
        "{csv}"
    );
}
