//! Running jobs against a real database: what lands in `imputed_data` and on the job, for
//! heart rate (ARIMA) and steps (forward/back fill), re-runs, and the `run` command.

use std::process::Command;

use wearhouse_core::store::jobs::{self as store, NewJob};
use wearhouse_core::{Metric, TimeRange};
use wearhouse_impute::fill::{FillConfig, fill_metric};
use wearhouse_impute::jobs::{self, JobSettings};

use crate::support::*;

/// Queues a job claimed by this test and runs it as `run` and the worker do.
async fn run_job(
    pool: &sqlx::PgPool,
    p: &wearhouse_core::ParticipantId,
    metric: Metric,
    from: i64,
    to: i64,
) -> jobs::Outcome {
    let mut conn = pool.acquire().await.unwrap();
    let claim = store::queue_claimed(
        &mut conn,
        &NewJob {
            participant: p.clone(),
            metric,
            range: TimeRange::new(minutes(from), minutes(to)).unwrap(),
        },
        "test",
    )
    .await
    .unwrap();
    drop(conn);
    jobs::execute(pool, &claim, &settings()).await.unwrap()
}

/// A fixed order keeps the unoptimised test build quick; selecting the order by AIC is the
/// engine's own concern (tests/statsmodels.rs).
fn settings() -> JobSettings {
    JobSettings {
        order: Some("1,0,1".parse().unwrap()),
        ..JobSettings::default()
    }
}

#[tokio::test]
async fn a_heart_rate_gap_is_filled_by_arima_and_a_non_wear_gap_stays_empty() {
    let db = db().await;
    let p = enrol(&db.pool, "P001").await;
    let (short, long) = (60..70, 120..210);
    write(&db, &heart_rate_samples(&p, 240, &[(60, 70), (120, 210)])).await;
    let before = raw_snapshot(&db.pool).await;

    let outcome = run_job(&db.pool, &p, Metric::HeartRate, 0, 240).await;

    // The engine on the minute means the test computes itself gives the expected fills.
    let values: Vec<Option<f64>> = (0..240)
        .map(|m| (!short.contains(&m) && !long.contains(&m)).then(|| heart_rate_minute_mean(m)))
        .collect();
    let config = FillConfig {
        order: settings().order,
        ..FillConfig::default()
    };
    let expected = fill_metric(Metric::HeartRate, &values, &config).unwrap();
    let rows = output(&db.pool, outcome.job_id).await;
    assert_eq!(
        rows.len(),
        240 - 90,
        "observed and filled minutes, not the non-wear"
    );
    for r in &rows {
        let m = (r.timestamp - minutes(0)).num_minutes();
        assert_eq!(r.method, "arima");
        assert_eq!(r.is_imputed, short.contains(&m), "minute {m}");
        assert!(!long.contains(&m), "minute {m} of the long gap was filled");
        let want = expected.values[m as usize].unwrap();
        let got = r.value_numeric.unwrap();
        assert!((got - want).abs() < 1e-4, "minute {m}: {got} vs {want}");
    }
    let filled: Vec<f64> = rows
        .iter()
        .filter(|r| r.is_imputed)
        .map(|r| r.value_numeric.unwrap())
        .collect();
    assert_eq!(filled.len(), 10);
    assert!(filled.iter().all(|v| (25.0..=250.0).contains(v)));

    let job = job(&db.pool, outcome.job_id).await;
    assert_eq!(job.status, "succeeded");
    assert_eq!(job.method.as_deref(), Some("arima"));
    let params = job.parameters.unwrap();
    let model = expected.model.unwrap();
    assert_eq!(
        params["order"],
        serde_json::json!([model.order.p, model.order.d, model.order.q])
    );
    for key in ["coefficients", "sigma2", "loglik", "aic"] {
        assert!(!params[key].is_null(), "{key} missing from {params}");
    }
    assert!((params["loglik"].as_f64().unwrap() - model.loglike).abs() < 1e-3);
    let summary = job.summary.unwrap();
    assert_eq!(summary["points"], 240);
    assert_eq!(summary["points_observed"], 140);
    assert_eq!(summary["gaps"], 2);
    assert_eq!(summary["gaps_filled"], 1);
    assert_eq!(summary["points_filled"], 10);
    assert_eq!(summary["points_left_empty"], 90);
    assert_eq!(
        raw_snapshot(&db.pool).await,
        before,
        "raw_data was modified"
    );
}

#[tokio::test]
async fn steps_fill_short_gaps_forward_and_back_and_leave_long_gaps_empty() {
    let db = db().await;
    let p = enrol(&db.pool, "P002").await;
    write(
        &db,
        &steps_samples(&p, 300, &[(0, 3), (50, 55), (100, 220)]),
    )
    .await;

    let outcome = run_job(&db.pool, &p, Metric::Steps, 0, 300).await;

    let rows = output(&db.pool, outcome.job_id).await;
    let at = |m: i64| rows.iter().find(|r| r.timestamp == minutes(m));
    for m in 0..3 {
        let r = at(m).unwrap();
        assert!(r.is_imputed);
        assert_eq!(
            r.value_numeric,
            Some(steps_at(3)),
            "a leading gap takes the first value"
        );
    }
    for m in 50..55 {
        let r = at(m).unwrap();
        assert!(r.is_imputed);
        assert_eq!(r.value_numeric, Some(steps_at(49)), "carried forward");
    }
    for m in 100..220 {
        assert!(at(m).is_none(), "minute {m} of a two-hour gap was filled");
    }
    let observed = at(60).unwrap();
    assert!(!observed.is_imputed);
    assert_eq!(observed.value_numeric, Some(steps_at(60)));
    assert!(rows.iter().all(|r| r.method == "forward_back_fill"));
    let s = job(&db.pool, outcome.job_id).await.summary.unwrap();
    assert_eq!(s["gaps"], 3);
    assert_eq!(s["gaps_filled"], 2);
    assert_eq!(s["points_filled"], 8);
    assert_eq!(s["points_left_empty"], 120);
}

#[tokio::test]
async fn rerunning_a_job_replaces_only_its_own_output() {
    let db = db().await;
    let p = enrol(&db.pool, "P003").await;
    write(&db, &steps_samples(&p, 120, &[(50, 55)])).await;
    let first = run_job(&db.pool, &p, Metric::Steps, 0, 120).await;
    let other = run_job(&db.pool, &p, Metric::Steps, 0, 120).await;
    let other_rows = output(&db.pool, other.job_id).await;
    assert_eq!(other_rows.len(), 120);

    // A late sample arrives inside the gap; running the first job again sees it.
    let late = steps_samples(&p, 53, &[(0, 52)]);
    write(&db, &late).await;
    let raw_before = raw_snapshot(&db.pool).await;
    let mut conn = db.pool.acquire().await.unwrap();
    let claim = store::claim_by_id(
        &mut conn,
        first.job_id,
        "again",
        chrono::TimeDelta::seconds(60),
    )
    .await
    .unwrap()
    .unwrap();
    drop(conn);
    jobs::execute(&db.pool, &claim, &settings()).await.unwrap();

    let rows = output(&db.pool, first.job_id).await;
    assert_eq!(rows.len(), 120, "replaced, not added to");
    let m52 = rows.iter().find(|r| r.timestamp == minutes(52)).unwrap();
    assert!(!m52.is_imputed);
    assert_eq!(m52.value_numeric, Some(steps_at(52)));
    assert_eq!(rows.iter().filter(|r| r.is_imputed).count(), 4);
    assert_eq!(
        output(&db.pool, other.job_id).await,
        other_rows,
        "another job's rows changed"
    );
    assert_eq!(
        raw_snapshot(&db.pool).await,
        raw_before,
        "raw_data was modified"
    );
    let again = job(&db.pool, first.job_id).await;
    assert_eq!(again.status, "succeeded");
    assert_eq!(again.worker.as_deref(), Some("again"));
}

#[tokio::test]
async fn the_run_command_queues_and_runs_a_job_and_prints_its_summary() {
    let db = db().await;
    let p = enrol(&db.pool, "P004").await;
    write(&db, &steps_samples(&p, 120, &[(30, 35)])).await;

    let printed = json_output(
        Command::new(env!("CARGO_BIN_EXE_wearhouse-impute"))
            .args(["run", "--participant", "P004", "--metric", "steps"])
            .args([
                "--from",
                &minutes(0).to_rfc3339(),
                "--to",
                &minutes(120).to_rfc3339(),
            ])
            .args(["--database-url", &db.url])
            .env_remove("DATABASE_URL"),
    );
    assert_eq!(printed["method"], "forward_back_fill");
    assert_eq!(printed["summary"]["points_filled"], 5);
    let id: uuid::Uuid = printed["job_id"].as_str().unwrap().parse().unwrap();
    let job = job(&db.pool, id).await;
    assert_eq!(job.status, "succeeded");
    assert_eq!(job.summary.unwrap(), printed["summary"]);
    let rows = output(&db.pool, id).await;
    assert_eq!(rows.iter().filter(|r| r.is_imputed).count(), 5);
}

#[tokio::test]
async fn the_run_command_refuses_an_unknown_participant() {
    let db = db().await;
    let out = Command::new(env!("CARGO_BIN_EXE_wearhouse-impute"))
        .args(["run", "--participant", "NOBODY", "--metric", "steps"])
        .args(["--from", "2025-06-01", "--to", "2025-06-02"])
        .args(["--database-url", &db.url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("participant not found: NOBODY"), "{stderr}");
    let jobs: i64 = sqlx::query_scalar("select count(*) from imputation_jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0);
}

#[tokio::test]
async fn the_run_command_refuses_a_range_longer_than_one_job_covers() {
    let db = db().await;
    enrol(&db.pool, "P005").await;
    let out = Command::new(env!("CARGO_BIN_EXE_wearhouse-impute"))
        .args(["run", "--participant", "P005", "--metric", "heart_rate"])
        .args(["--from", "2025-01-01", "--to", "2025-06-01"])
        .args(["--database-url", &db.url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid to") && stderr.contains("longer than the 92 days"),
        "{stderr}"
    );
    let jobs: i64 = sqlx::query_scalar("select count(*) from imputation_jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0);
}
