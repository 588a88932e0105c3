//! `/openapi.json` states what the code checks: which parameters are required, the bounds of
//! numbers and ids, the format of job ids, and that unknown parameters are ignored. The bounds
//! are read from the document and tried against the API, so the two cannot drift apart.

use serde_json::Value;
use wearhouse_api::routes::{audit, participants};
use wearhouse_api::startup::ServeArgs;
use wearhouse_core::ParticipantId;
use wearhouse_core::store::series::MAX_POINTS_LIMIT;

use crate::support::*;

/// The parameter `name` of `method path`.
fn parameter<'a>(doc: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("{method} {path} has no parameters"))
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} does not document {name}"))
}

const DATA: &str = "participant_id=P001&metric=steps&start_date=2025-06-01&end_date=2025-06-02";

#[tokio::test]
async fn the_openapi_document_states_what_the_code_checks() {
    let app = spawn_app().await;
    let (_, doc) = app.get_json("/openapi.json").await;

    for path in ["/data", "/data.csv"] {
        let id = parameter(&doc, "get", path, "participant_id");
        assert_eq!(id["required"], true, "{path}: {id}");
        assert_eq!(id["schema"]["minItems"], 1, "{path}: {id}");
        assert_eq!(
            id["schema"]["maxItems"],
            wearhouse_api::routes::data::MAX_PARTICIPANTS_PER_REQUEST,
            "{path}: {id}"
        );
        assert_eq!(id["schema"]["items"]["minLength"], 1, "{path}: {id}");
        let alias = parameter(&doc, "get", path, "user_id");
        assert_eq!(alias["required"], false, "{path}: {alias}");
        assert_eq!(alias["schema"]["items"]["minLength"], 1, "{path}: {alias}");
        for name in ["metric", "start_date", "end_date"] {
            assert_eq!(
                parameter(&doc, "get", path, name)["required"],
                true,
                "{path} {name}"
            );
        }
        for name in ["limit", "max_points"] {
            let schema = &parameter(&doc, "get", path, name)["schema"];
            assert_eq!(schema["minimum"], 1, "{path} {name}");
            assert_eq!(schema["maximum"], MAX_POINTS_LIMIT, "{path} {name}");
        }
        assert_eq!(
            parameter(&doc, "get", path, "offset")["schema"]["minimum"],
            0
        );
    }
    for path in ["/export/fhir", "/export/omh"] {
        let id = parameter(&doc, "get", path, "participant_id");
        assert_eq!(id["required"], true, "{path}: {id}");
        assert_eq!(id["schema"]["minLength"], 1, "{path}: {id}");
        assert_eq!(
            id["schema"]["maxLength"],
            ParticipantId::MAX_LEN,
            "{path}: {id}"
        );
        for name in ["from", "to"] {
            let day = parameter(&doc, "get", path, name);
            assert_eq!(day["required"], true, "{path} {name}");
            assert_eq!(day["schema"]["format"], "date", "{path} {name}: {day}");
        }
    }
    let limit = &parameter(&doc, "get", "/participants", "limit")["schema"];
    assert_eq!(limit["maximum"], participants::MAX_LIMIT);
    assert_eq!(limit["minimum"], 1);
    let limit = &parameter(&doc, "get", "/audit", "limit")["schema"];
    assert_eq!(limit["maximum"], audit::MAX_LIMIT);
    assert_eq!(limit["minimum"], 1);

    // Ids: never empty, participant ids at most their length, job ids UUIDs.
    for (method, path) in [
        ("get", "/participants/{id}"),
        ("patch", "/participants/{id}"),
        ("get", "/participants/{id}/consent-links"),
        ("post", "/participants/{id}/consent-links"),
        ("delete", "/participants/{id}/consent-links/{link_id}"),
        ("post", "/participants/{id}/withdraw"),
        ("post", "/participants/{id}/erase"),
        ("get", "/participants/{id}/export"),
    ] {
        let id = parameter(&doc, method, path, "id");
        assert_eq!(id["required"], true, "{method} {path}");
        assert_eq!(id["schema"]["minLength"], 1, "{method} {path}: {id}");
        assert_eq!(
            id["schema"]["maxLength"],
            ParticipantId::MAX_LEN,
            "{method} {path}: {id}"
        );
    }
    for name in ["user_id", "participant_id"] {
        let id = &parameter(&doc, "post", "/data/run_imputation", name)["schema"];
        assert_eq!(id["minLength"], 1, "{name}: {id}");
        assert_eq!(id["maxLength"], ParticipantId::MAX_LEN, "{name}: {id}");
    }
    let job = &parameter(&doc, "get", "/data/imputation_jobs/{id}", "id")["schema"];
    assert_eq!(job["type"], "string");
    assert_eq!(job["format"], "uuid", "{job}");
    for schema in ["Queued", "JobView"] {
        let id = &doc["components"]["schemas"][schema]["properties"]["job_id"];
        assert_eq!(id["format"], "uuid", "{schema}: {id}");
    }
    let description = doc["info"]["description"].as_str().unwrap();
    assert!(
        description.contains("Unknown query parameters are ignored"),
        "{description}"
    );

    // The documented bounds are the enforced ones: the maximum passes, one more is a 400.
    for (path, base, name) in [
        ("/data", DATA, "limit"),
        ("/data", DATA, "max_points"),
        ("/participants", "", "limit"),
        ("/audit", "", "limit"),
    ] {
        let max = parameter(&doc, "get", path, name)["schema"]["maximum"]
            .as_u64()
            .unwrap();
        let (status, body) = app.get_json(&format!("{path}?{base}&{name}={max}")).await;
        assert_eq!(status, 200, "{path} {name}={max}: {body}");
        let (status, body) = app
            .get_json(&format!("{path}?{base}&{name}={}", max + 1))
            .await;
        assert_eq!(status, 400, "{path} {name}={}: {body}", max + 1);
        assert_eq!(body["error"]["parameter"], name);
    }
    let (status, body) = app.get_json(&format!("/data?{DATA}&participant_id=")).await;
    assert_eq!(status, 200, "an empty value counts as absent: {body}");
    let (status, body) = app
        .get_json("/data?metric=steps&start_date=2025-06-01&end_date=2025-06-02")
        .await;
    assert_eq!(status, 400, "participant_id is required: {body}");
    assert_eq!(body["error"]["parameter"], "participant_id");
}

/// Requests the schema-driven fuzz suite (tests/api-fuzz) found answered with a status their
/// operation did not document: an id one character too long, a link id beyond `i64`, a sign-in
/// without a body. Each answer must be one the document lists, so that clients generated from
/// it handle the refusal.
#[tokio::test]
async fn every_refusal_of_a_malformed_request_is_a_documented_status() {
    let app = spawn_app().await;
    let (_, doc) = app.get_json("/openapi.json").await;
    let long = "0".repeat(ParticipantId::MAX_LEN + 1);
    let cases = [
        (
            "get",
            "/participants/{id}/consent-links",
            format!("/participants/{long}/consent-links"),
        ),
        (
            "get",
            "/participants/{id}/export",
            format!("/participants/{long}/export"),
        ),
        (
            "delete",
            "/participants/{id}/consent-links/{link_id}",
            "/participants/P001/consent-links/9223372036854775808".to_owned(),
        ),
        ("post", "/auth/login", "/auth/login".to_owned()),
    ];
    for (method, template, path) in cases {
        let response = app
            .client
            .request(
                method.to_uppercase().parse().unwrap(),
                format!("{}{path}", app.base),
            )
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert_eq!(status, 400, "{method} {path}");
        let documented = &doc["paths"][template][method]["responses"][status.to_string()];
        assert!(
            documented.is_object(),
            "{method} {template} answers {status} but does not document it: {}",
            doc["paths"][template][method]["responses"]
        );
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{method} {path}: {body}");
    }
    // A consent link's lifetime: its bounds are documented, so a client within them is served.
    let hours = &doc["components"]["schemas"]["NewLinkBody"]["properties"]["expires_in_hours"];
    assert_eq!(hours["minimum"], 1, "{hours}");
    assert_eq!(hours["maximum"], 336, "{hours}");
}

/// Every data read answers 429 once the user's pace is spent, so each documents it.
#[tokio::test]
async fn every_paced_data_read_documents_its_429() {
    let mut args = ServeArgs::default();
    args.auth.read_burst = 1;
    args.auth.read_per_minute = 1;
    let app = spawn_with(preferred_backend().await, args).await;
    let (_, doc) = app.get_json("/openapi.json").await;
    assert_eq!(app.get(&format!("/data?{DATA}")).await.status(), 200);
    let job = "00000000-0000-0000-0000-000000000000";
    for (template, path) in [
        ("/data", format!("/data?{DATA}")),
        ("/data.csv", format!("/data.csv?{DATA}")),
        (
            "/data/imputation_jobs/{id}",
            format!("/data/imputation_jobs/{job}"),
        ),
        (
            "/participants/{id}/export",
            "/participants/P001/export".to_owned(),
        ),
        (
            "/export/fhir",
            "/export/fhir?participant_id=P001&from=2025-06-01&to=2025-06-02".to_owned(),
        ),
        (
            "/export/omh",
            "/export/omh?participant_id=P001&from=2025-06-01&to=2025-06-02".to_owned(),
        ),
    ] {
        assert_eq!(app.get(&path).await.status(), 429, "{path}");
        assert!(
            doc["paths"][template]["get"]["responses"]["429"].is_object(),
            "GET {template} answers 429 but does not document it"
        );
    }
}
