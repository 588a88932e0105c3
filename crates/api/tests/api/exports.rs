//! The exports in standard formats (`GET /export/fhir`, `GET /export/omh`, `wearhouse-api
//! export`): what they hold for the seeded participants per local day of their time zone,
//! their media types, who may call them, and the audit rows they leave. Their conformance to
//! FHIR R4 and to the Open mHealth schemas is checked by tests/exports/validate.sh.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use wearhouse_api::exports::cli::{CliFormat, ExportArgs};
use wearhouse_core::store::users::Role;
use wearhouse_core::store::writer::SampleWriter;
use wearhouse_core::{Metric, ParticipantId, Sample};

use crate::access::user_with_token;
use crate::support::*;

/// Heart-rate sample numbers of the seed in `[start, end)`.
fn hr_samples_in(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<i64> {
    (0..HR_SAMPLES)
        .filter(|k| {
            let at = t(SEED_START) + Duration::seconds(k * HR_STEP_SECS);
            start <= at && at < end
        })
        .collect()
}

async fn get_export(app: &TestApp, path: &str, accept: Option<&str>) -> reqwest::Response {
    let mut r = app.client.get(format!("{}{path}", app.base));
    if let Some(a) = accept {
        r = r.header("accept", a);
    }
    r.send().await.unwrap()
}

fn content_type(r: &reqwest::Response) -> String {
    r.headers()["content-type"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_fhir_export_is_a_bundle_of_observations_per_local_day_streamed() {
    let app = spawn_app().await;
    let r = get_export(
        &app,
        "/export/fhir?participant_id=P002&from=2025-06-01&to=2025-06-02",
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(content_type(&r), "application/fhir+json");
    // Streamed: the length is not known before the body is written.
    assert!(
        r.headers().get("content-length").is_none(),
        "{:?}",
        r.headers()
    );
    let bundle: Value = r.json().await.unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    let entries = bundle["entry"].as_array().unwrap();

    // P002 lives in New York (EDT, UTC-4): the local day is [04:00Z, 04:00Z next day).
    let hr = hr_samples_in(t("2025-06-01T04:00:00Z"), t("2025-06-02T04:00:00Z"));
    let code = |e: &Value| e["resource"]["code"]["coding"][0]["code"].clone();
    let heart: Vec<&Value> = entries.iter().filter(|e| code(e) == "8867-4").collect();
    assert_eq!(heart.len(), hr.len());
    let first = &heart[0]["resource"];
    let at = t(SEED_START) + Duration::seconds(hr[0] * HR_STEP_SECS);
    assert_eq!(
        first["effectiveDateTime"],
        at.with_timezone(&chrono_tz::America::New_York).to_rfc3339()
    );
    assert!(
        first["effectiveDateTime"]
            .as_str()
            .unwrap()
            .ends_with("-04:00"),
        "{first}"
    );
    assert_eq!(
        first["valueQuantity"]["value"].as_f64(),
        Some(heart_rate(1, hr[0]))
    );
    assert_eq!(first["subject"]["identifier"]["value"], "P002");
    assert_eq!(first["category"][0]["coding"][0]["code"], "vital-signs");

    let days: Vec<&Value> = entries.iter().filter(|e| code(e) == "41950-7").collect();
    assert_eq!(days.len(), 1);
    let day = &days[0]["resource"];
    let expected: f64 = (240..1_680).map(|k| steps(1, k)).sum();
    assert_eq!(day["valueQuantity"]["value"].as_f64(), Some(expected));
    assert_eq!(day["effectivePeriod"]["start"], "2025-06-01T00:00:00-04:00");
    assert_eq!(day["effectivePeriod"]["end"], "2025-06-02T00:00:00-04:00");
    // Nothing else was seeded for P002 that day.
    assert_eq!(entries.len(), hr.len() + 1);
}

/// Every data point with the fields that differ between two exports (its id, when it was
/// made) taken out.
fn without_header_ids(points: &[Value]) -> Vec<Value> {
    points
        .iter()
        .map(|p| {
            let mut p = p.clone();
            let header = p["header"].as_object_mut().unwrap();
            header.remove("id");
            header.remove("creation_date_time");
            p
        })
        .collect()
}

#[tokio::test]
async fn the_omh_export_is_a_json_array_or_ndjson_as_asked() {
    let app = spawn_app().await;
    let path = "/export/omh?participant_id=P001&from=2025-06-01&to=2025-06-02";
    let r = get_export(&app, path, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(content_type(&r), "application/json");
    let array: Vec<Value> = r.json().await.unwrap();

    let r = get_export(&app, path, Some("application/x-ndjson")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(content_type(&r), "application/x-ndjson");
    let text = r.text().await.unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(without_header_ids(&array), without_header_ids(&lines));

    // P001 lives in London (BST, UTC+1): the local day is [23:00Z the day before, 23:00Z).
    let name = |p: &Value| {
        p["header"]["schema_id"]["name"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let hr = hr_samples_in(t("2025-05-31T23:00:00Z"), t("2025-06-01T23:00:00Z"));
    assert_eq!(
        array.iter().filter(|p| name(p) == "heart-rate").count(),
        hr.len()
    );
    let step_days: Vec<&Value> = array.iter().filter(|p| name(p) == "step-count").collect();
    assert_eq!(step_days.len(), 1);
    let expected: f64 = (0..1_380).map(|k| steps(0, k)).sum();
    assert_eq!(
        step_days[0]["body"]["step_count"]["value"].as_f64(),
        Some(expected)
    );
    // The seeded night: 30 minutes each of light, deep and rem, then 15 awake.
    let sleep: Vec<&Value> = array
        .iter()
        .filter(|p| name(p) == "sleep-episode")
        .collect();
    assert_eq!(sleep.len(), 1);
    let body = &sleep[0]["body"];
    assert_eq!(body["total_sleep_time"]["value"], 45);
    assert_eq!(body["is_main_sleep"], true);
    assert_eq!(body["sleep_maintenance_efficiency_percentage"]["value"], 75);
    assert_eq!(
        body["effective_time_frame"]["time_interval"]["start_date_time"],
        "2025-06-01T01:00:00+01:00"
    );
    assert_eq!(
        body["effective_time_frame"]["time_interval"]["end_date_time"],
        "2025-06-01T02:00:00+01:00"
    );
    assert_eq!(sleep[0]["header"]["user_id"], "P001");
    assert_eq!(array.len(), hr.len() + 2);
}

#[tokio::test]
async fn a_day_of_a_clock_change_is_summed_over_its_25_hours() {
    let app = spawn_app().await;
    let db = app.db.as_ref().unwrap();
    // One step a minute across the night London leaves summer time (2025-10-26 has 25 hours).
    let p1 = ParticipantId::parse("P001").unwrap();
    let start = t("2025-10-25T22:00:00Z");
    let samples: Vec<Sample> = (0..27 * 60)
        .map(|k| Sample::numeric(p1.clone(), Metric::Steps, start + Duration::minutes(k), 1.0))
        .collect();
    let mut conn = db.pool.acquire().await.unwrap();
    SampleWriter::new(&db.backend)
        .write(&mut conn, &samples)
        .await
        .unwrap();
    let (status, bundle) = fhir_json(
        &app,
        "/export/fhir?participant_id=P001&from=2025-10-26&to=2025-10-27",
    )
    .await;
    assert_eq!(status, 200, "{bundle}");
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{bundle}");
    let day = &entries[0]["resource"];
    assert_eq!(day["valueQuantity"]["value"], 25 * 60);
    assert_eq!(day["effectivePeriod"]["start"], "2025-10-26T00:00:00+01:00");
    assert_eq!(day["effectivePeriod"]["end"], "2025-10-27T00:00:00+00:00");

    // A range without data is a Bundle without entries (FHIR's JSON has no empty arrays).
    let (status, empty) = fhir_json(
        &app,
        "/export/fhir?participant_id=P003&from=2025-06-01&to=2025-06-08",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(empty["resourceType"], "Bundle");
    assert!(empty.get("entry").is_none(), "{empty}");
}

async fn fhir_json(app: &TestApp, path: &str) -> (u16, Value) {
    let r = get_export(app, path, None).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn a_bad_parameter_is_a_400_naming_it_and_an_unknown_participant_a_404() {
    let app = spawn_app().await;
    for route in ["/export/fhir", "/export/omh"] {
        for (query, parameter) in [
            ("from=2025-06-01&to=2025-06-02", "participant_id"),
            (
                "participant_id=P%20001&from=2025-06-01&to=2025-06-02",
                "participant_id",
            ),
            ("participant_id=P001&to=2025-06-02", "from"),
            ("participant_id=P001&from=2025-13-01&to=2025-06-02", "from"),
            ("participant_id=P001&from=2025-06-01&to=tomorrow", "to"),
            ("participant_id=P001&from=2025-06-02&to=2025-06-02", "to"),
            ("participant_id=P001&from=2025-06-02&to=2025-06-01", "to"),
            ("participant_id=P001&from=2000-01-01&to=2030-01-01", "to"),
        ] {
            let (status, body) = app.get_json(&format!("{route}?{query}")).await;
            assert_eq!(status, 400, "{route}?{query}: {body}");
            assert_eq!(body["error"]["parameter"], parameter, "{route}?{query}");
        }
        let (status, body) = app
            .get_json(&format!(
                "{route}?participant_id=P999&from=2025-06-01&to=2025-06-02"
            ))
            .await;
        assert_eq!(status, 404, "{body}");
    }
}

async fn export_rows(app: &TestApp) -> Vec<(String, Vec<String>, String, Value)> {
    sqlx::query_as(
        "select actor, participant_ids, outcome, detail from audit_log
         where action = 'export' order by audit_id",
    )
    .fetch_all(&app.db.as_ref().unwrap().pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn only_the_roles_that_may_export_get_one_and_each_is_audited() {
    let app = spawn_app().await;
    let q = "participant_id=P001&from=2025-06-01&to=2025-06-02";
    for (role, expected) in [
        (Role::Analyst, 403),
        (Role::Coordinator, 403),
        (Role::Researcher, 200),
    ] {
        let token = user_with_token(&app, &format!("{role}@example.org"), role, &["default"]).await;
        for route in ["/export/fhir", "/export/omh"] {
            let r = reqwest::Client::new()
                .get(format!("{}{route}?{q}", app.base))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), expected, "{role} {route}");
        }
    }
    // Refused roles leave no export row; the researcher's two exports are recorded.
    let rows = export_rows(&app).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for ((actor, ids, outcome, detail), format) in rows.iter().zip(["fhir", "omh"]) {
        assert_eq!(actor, "token tests of researcher@example.org");
        assert_eq!(ids, &["P001"]);
        assert_eq!(outcome, "ok");
        assert_eq!(detail["format"], format);
        assert_eq!(detail["from"], "2025-06-01");
        assert_eq!(detail["timezone"], "Europe/London");
    }

    // A participant of another study is answered like an unknown one, and the refusal
    // recorded.
    let other = user_with_token(&app, "other@example.org", Role::Researcher, &["other"]).await;
    let r = reqwest::Client::new()
        .get(format!("{}/export/fhir?{q}", app.base))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let rows = export_rows(&app).await;
    let (actor, ids, outcome, _) = rows.last().unwrap();
    assert_eq!(
        (actor.as_str(), ids.as_slice(), outcome.as_str()),
        (
            "token tests of other@example.org",
            &["P001".to_owned()][..],
            "denied"
        )
    );
}

#[tokio::test]
async fn the_command_line_writes_the_same_export_and_audits_it() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("P001.json");
    let db = app.db.as_ref().unwrap();
    wearhouse_api::exports::cli::run(
        &database(db.url.clone()),
        ExportArgs {
            format: CliFormat::Omh,
            participant: "P001".into(),
            from: "2025-06-01".into(),
            to: "2025-06-02".into(),
            out: out.clone(),
        },
    )
    .await
    .unwrap();
    let file: Vec<Value> = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let http: Vec<Value> = get_export(
        &app,
        "/export/omh?participant_id=P001&from=2025-06-01&to=2025-06-02",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(without_header_ids(&file), without_header_ids(&http));
    assert!(!dir.path().join("P001.json.partial").exists());
    let rows = export_rows(&app).await;
    let (actor, ids, _, detail) = &rows[0];
    assert!(actor.starts_with("cli"), "{actor}");
    assert_eq!(ids, &["P001"]);
    assert_eq!(detail["format"], "omh");

    // An unknown participant writes nothing.
    let missing = dir.path().join("P999.json");
    let e = wearhouse_api::exports::cli::run(
        &database(db.url.clone()),
        ExportArgs {
            format: CliFormat::Fhir,
            participant: "P999".into(),
            from: "2025-06-01".into(),
            to: "2025-06-02".into(),
            out: missing.clone(),
        },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("no participant P999"), "{e}");
    assert!(!missing.exists());
}

#[tokio::test]
async fn a_gap_longer_than_the_session_gap_starts_another_episode_and_the_longest_is_main() {
    let app = spawn_app().await;
    let db = app.db.as_ref().unwrap();
    // A 20-minute nap in the afternoon of the seeded night's day, hours after it.
    let p1 = ParticipantId::parse("P001").unwrap();
    let nap: Vec<Sample> = (0..40)
        .map(|k| {
            Sample::sleep_stage(
                p1.clone(),
                t("2025-06-01T14:00:00Z") + Duration::seconds(30 * k),
                "light",
            )
        })
        .collect();
    let mut conn = db.pool.acquire().await.unwrap();
    SampleWriter::new(&db.backend)
        .write(&mut conn, &nap)
        .await
        .unwrap();
    let points: Vec<Value> = get_export(
        &app,
        "/export/omh?participant_id=P001&from=2025-06-01&to=2025-06-02",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let sleep: Vec<&Value> = points
        .iter()
        .map(|p| &p["body"])
        .filter(|b| b.get("total_sleep_time").is_some())
        .collect();
    let summary: Vec<(i64, bool)> = sleep
        .iter()
        .map(|b| {
            (
                b["total_sleep_time"]["value"].as_i64().unwrap(),
                b["is_main_sleep"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [(45, true), (20, false)]);
    assert_eq!(
        sleep[1]["effective_time_frame"]["time_interval"]["start_date_time"],
        "2025-06-01T15:00:00+01:00"
    );
}
