//! Imputation through the API: a job queued with `POST /data/run_imputation` is followed with
//! `GET /data/imputation_jobs/{id}`; bad input gets 400 naming the parameter, unknown things 404.
//! That a real worker runs a queued job is tested in `wearhouse-impute` (`tests/api_jobs.rs`),
//! so that the API does not depend on the impute crate.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use crate::support::*;

impl TestApp {
    async fn post_json(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }
}

#[tokio::test]
async fn without_dates_a_job_covers_the_participants_last_seven_days_of_data() {
    let app = spawn_app().await;
    let (status, queued) = app
        .post_json("/data/run_imputation?participant_id=P001&metric=heart_rate")
        .await;
    assert_eq!(status, 202, "{queued}");
    let (_, job) = app.get_json(queued["status_url"].as_str().unwrap()).await;
    assert_eq!(job["status"], "queued");
    let last = t(SEED_START) + TimeDelta::seconds((HR_SAMPLES - 1) * HR_STEP_SECS);
    let minute = last - TimeDelta::seconds(last.timestamp().rem_euclid(60));
    let end = minute + TimeDelta::minutes(1);
    assert_eq!(
        job["end_date"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        end
    );
    assert_eq!(
        job["start_date"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        end - TimeDelta::days(7)
    );
}

#[tokio::test]
async fn bad_requests_name_the_parameter_and_unknown_things_are_404() {
    let app = spawn_app().await;
    for (query, parameter) in [
        ("metric=steps", "user_id"),
        ("user_id=P001", "metric"),
        ("user_id=P001&metric=mood", "metric"),
        ("user_id=P0%2701&metric=steps", "user_id"),
        ("participant_id=-x&metric=steps", "participant_id"),
        (
            "user_id=P001&metric=steps&start_date=yesterday&end_date=2025-06-02",
            "start_date",
        ),
        (
            "user_id=P001&metric=steps&start_date=2025-06-01",
            "end_date",
        ),
        (
            "user_id=P001&metric=steps&start_date=2025-06-02&end_date=2025-06-01",
            "end_date",
        ),
        // Longer than the 92 days one job covers.
        (
            "user_id=P001&metric=heart_rate&start_date=2025-06-01&end_date=2025-09-01T00:00:01Z",
            "end_date",
        ),
    ] {
        let (status, body) = app
            .post_json(&format!("/data/run_imputation?{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["parameter"], parameter, "{query}: {body}");
    }
    for query in [
        "user_id=NOBODY&metric=steps&start_date=2025-06-01&end_date=2025-06-02",
        "user_id=NOBODY&metric=steps",
        // Enrolled, but without data to pick a default range from.
        &format!("user_id={WITHOUT_DATA}&metric=heart_rate"),
    ] {
        let (status, body) = app
            .post_json(&format!("/data/run_imputation?{query}"))
            .await;
        assert_eq!(status, 404, "{query}: {body}");
    }
    let (status, _) = app
        .get_json("/data/imputation_jobs/6f1c1a52-3e0b-4a3f-9d5e-2b7c8d9e0f11")
        .await;
    assert_eq!(status, 404);
    let (status, body) = app.get_json("/data/imputation_jobs/not-a-job").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["parameter"], "id");
    let count: i64 = sqlx::query_scalar("select count(*) from imputation_jobs")
        .fetch_one(&app.db.as_ref().unwrap().pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "a rejected request queued a job");
    // Exactly 92 days is one job.
    let (status, body) = app
        .post_json(
            "/data/run_imputation?user_id=P001&metric=heart_rate&start_date=2025-06-01\
             &end_date=2025-09-01",
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn the_openapi_document_describes_the_imputation_routes() {
    let app = spawn_app().await;
    let (_, doc) = app.get_json("/openapi.json").await;
    assert!(doc["paths"]["/data/run_imputation"]["post"].is_object());
    assert!(doc["paths"]["/data/imputation_jobs/{id}"]["get"].is_object());
}
