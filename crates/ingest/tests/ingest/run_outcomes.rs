//! What a run makes of what the sources report: a declined scope or an endpoint the provider
//! does not offer skips the metric (counted, listed, no failure); the study and `--metrics`
//! choose what is fetched; how long re-consent has been waited for; and `run`'s exit status
//! and summary, from the binary.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wearhouse_core::store::participants::{self, NewParticipant};
use wearhouse_core::store::{collection, ingest_state};
use wearhouse_core::telemetry::MetricsRegistry;
use wearhouse_core::testing::{TestBackend, TestDb};
use wearhouse_core::{Metric, ParticipantId, Sample};
use wearhouse_ingest::metrics::{IngestMetrics, Outcome, SkipReason};
use wearhouse_ingest::migration::reconsent::{self, ReconsentKind};
use wearhouse_ingest::pipeline::{Pipeline, PipelineArgs, RunReport, RunStatus};
use wearhouse_ingest::sources::registry::Sources;
use wearhouse_ingest::sources::{Fetched, Source, SourceError, SourceParticipant};

const SOURCE: &str = "scripted";
const SYNC_DAY: u32 = 3;

/// A provider with one heart rate sample per day for every participant, synced on the 3rd,
/// whose answers the test scripts per metric. It records every fetch.
#[derive(Default)]
struct Scripted {
    /// Scopes each participant declined.
    declined: Mutex<BTreeMap<String, BTreeSet<&'static str>>>,
    /// Metrics the provider does not serve.
    not_offered: Mutex<BTreeSet<Metric>>,
    fetches: Mutex<Vec<(String, Metric)>>,
}

impl Scripted {
    fn decline(&self, participant: &str, scope: &'static str) {
        self.declined
            .lock()
            .unwrap()
            .entry(participant.to_owned())
            .or_default()
            .insert(scope);
    }

    fn fetched(&self, metric: Metric) -> usize {
        self.fetches
            .lock()
            .unwrap()
            .iter()
            .filter(|f| f.1 == metric)
            .count()
    }
}

#[async_trait]
impl Source for Scripted {
    fn name(&self) -> &'static str {
        SOURCE
    }

    fn metrics(&self) -> Vec<Metric> {
        vec![Metric::HeartRate, Metric::Spo2, Metric::HrvRmssd]
    }

    fn scope(&self, metric: Metric) -> Option<&'static str> {
        Some(match metric {
            Metric::Spo2 => "oxygen_saturation",
            _ => "heartrate",
        })
    }

    async fn last_sync(&self, _: &SourceParticipant) -> Result<Option<DateTime<Utc>>, SourceError> {
        Ok(Some(at(SYNC_DAY, 12)))
    }

    async fn fetch(
        &self,
        p: &SourceParticipant,
        metric: Metric,
        from: NaiveDate,
        _to: NaiveDate,
    ) -> Result<Fetched, SourceError> {
        self.fetches
            .lock()
            .unwrap()
            .push((p.id.to_string(), metric));
        let scope = self.scope(metric).unwrap();
        if self
            .declined
            .lock()
            .unwrap()
            .get(p.id.as_str())
            .is_some_and(|d| d.contains(scope))
        {
            return Err(SourceError::ScopeNotGranted {
                scope: scope.into(),
            });
        }
        if self.not_offered.lock().unwrap().contains(&metric) {
            return Err(SourceError::NotOffered {
                reason: "404 for this account".into(),
            });
        }
        let t = Utc.from_utc_datetime(&from.and_hms_opt(6, 0, 0).unwrap());
        Ok(Fetched {
            samples: vec![Sample::numeric(p.id.clone(), metric, t, 60.0)],
            incomplete_from: None,
        })
    }
}

fn at(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, d, h, 0, 0).unwrap()
}

async fn enrol(pool: &PgPool, id: &str, provider: &str) {
    let mut conn = pool.acquire().await.unwrap();
    participants::upsert(
        &mut conn,
        &NewParticipant {
            participant_id: ParticipantId::parse(id).unwrap(),
            timezone: chrono_tz::UTC,
            provider: Some(provider.into()),
            enrolled_at: Some(at(1, 0)),
            study_id: None,
        },
    )
    .await
    .unwrap();
}

async fn run_with(
    pool: &PgPool,
    source: &Arc<Scripted>,
    metrics: &IngestMetrics,
    args: PipelineArgs,
) -> RunReport {
    let sources = Sources::from_sources([Arc::clone(source) as Arc<dyn Source>]);
    Pipeline::new(pool.clone(), sources, metrics.clone(), args)
        .await
        .unwrap()
        .run(&CancellationToken::new())
        .await
        .unwrap()
}

async fn run(pool: &PgPool, source: &Arc<Scripted>, metrics: &IngestMetrics) -> RunReport {
    run_with(pool, source, metrics, PipelineArgs::default()).await
}

async fn watermark(pool: &PgPool, p: &str, m: Metric) -> Option<DateTime<Utc>> {
    let mut conn = pool.acquire().await.unwrap();
    ingest_state::get(&mut conn, &ParticipantId::parse(p).unwrap(), SOURCE, m)
        .await
        .unwrap()
}

async fn rows(pool: &PgPool, p: &str, m: Metric) -> i64 {
    sqlx::query_scalar("select count(*) from raw_data where participant_id = $1 and data_type = $2")
        .bind(p)
        .bind(m.name())
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn reconsent_list(pool: &PgPool) -> Vec<reconsent::ReconsentEntry> {
    let mut conn = pool.acquire().await.unwrap();
    reconsent::list(&mut conn).await.unwrap()
}

#[tokio::test]
async fn a_declined_scope_skips_the_metric_lists_the_scope_and_fails_nothing_until_granted() {
    let db = TestDb::new(TestBackend::Postgres).await;
    enrol(&db.pool, "P1", SOURCE).await;
    enrol(&db.pool, "P2", SOURCE).await;
    let src = Arc::new(Scripted::default());
    src.decline("P1", "oxygen_saturation");
    let registry = MetricsRegistry::new();
    let metrics = IngestMetrics::register(&registry);

    let report = run(&db.pool, &src, &metrics).await;
    assert_eq!(report.outcome(), Outcome::Success);
    assert_eq!(report.status(), RunStatus::Complete);
    assert_eq!(report.loaded, 2);
    let skipped: Vec<_> = report
        .skipped
        .iter()
        .map(|s| {
            (
                s.participant_id.as_str(),
                s.metric,
                s.reason,
                s.detail.as_str(),
            )
        })
        .collect();
    assert_eq!(
        skipped,
        [(
            "P1",
            Metric::Spo2,
            SkipReason::ScopeNotGranted,
            "oxygen_saturation"
        )]
    );
    assert!(
        report
            .summary()
            .contains("metrics skipped, scope not granted: 1: P1 spo2 (oxygen_saturation)")
    );
    // The declined metric has neither data nor a watermark, nor an error; the rest loaded.
    assert_eq!(rows(&db.pool, "P1", Metric::Spo2).await, 0);
    assert_eq!(watermark(&db.pool, "P1", Metric::Spo2).await, None);
    assert_eq!(rows(&db.pool, "P1", Metric::HeartRate).await, 3);
    assert_eq!(rows(&db.pool, "P2", Metric::Spo2).await, 3);
    let errors: i64 =
        sqlx::query_scalar("select count(*) from ingest_state where last_error is not null")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(errors, 0);
    let text = registry.render();
    assert!(
        text.contains(
            "wearhouse_ingest_metrics_skipped_total{source=\"scripted\",metric=\"spo2\",reason=\"scope_not_granted\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("wearhouse_ingest_run_participants{outcome=\"loaded\"} 2"));

    let listed = reconsent_list(&db.pool).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].participant_id, "P1");
    assert_eq!(listed[0].kind, ReconsentKind::ScopeNotGranted);
    assert_eq!(listed[0].scope.as_deref(), Some("oxygen_saturation"));
    let table = reconsent::table(&listed);
    assert!(
        table.contains("scope not granted: oxygen_saturation (skipped: spo2)"),
        "{table}"
    );

    // The participant consents again with the scope: the metric loads from the enrolment day
    // and leaves the list.
    src.declined.lock().unwrap().clear();
    let report = run(&db.pool, &src, &metrics).await;
    assert!(report.skipped.is_empty());
    assert_eq!(rows(&db.pool, "P1", Metric::Spo2).await, 3);
    assert!(reconsent_list(&db.pool).await.is_empty());
}

#[tokio::test]
async fn a_scope_the_stored_grant_lacks_is_not_asked_for() {
    let db = TestDb::new(TestBackend::Postgres).await;
    enrol(&db.pool, "P1", SOURCE).await;
    // The grant as the provider answered it: SpO2 declined.
    sqlx::query(
        "insert into oauth_tokens (participant_id, provider, plain_access_token, expires_at, scope)
         values ('P1', $1, 'token', now() + interval '1 hour', 'heartrate profile settings')",
    )
    .bind(SOURCE)
    .execute(&db.pool)
    .await
    .unwrap();
    let src = Arc::new(Scripted::default());
    let report = run(&db.pool, &src, &IngestMetrics::unregistered()).await;
    assert_eq!(report.status(), RunStatus::Complete);
    assert_eq!(
        src.fetched(Metric::Spo2),
        0,
        "a declined scope is not requested"
    );
    assert_eq!(src.fetched(Metric::HeartRate), 3);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].reason, SkipReason::ScopeNotGranted);
    let listed = reconsent_list(&db.pool).await;
    assert_eq!(listed[0].scope.as_deref(), Some("oxygen_saturation"));
}

#[tokio::test]
async fn an_endpoint_not_offered_is_skipped_for_the_run_and_its_watermark_stays() {
    let db = TestDb::new(TestBackend::Postgres).await;
    enrol(&db.pool, "P1", SOURCE).await;
    let src = Arc::new(Scripted::default());
    src.not_offered.lock().unwrap().insert(Metric::HrvRmssd);
    let registry = MetricsRegistry::new();
    let metrics = IngestMetrics::register(&registry);

    let report = run(&db.pool, &src, &metrics).await;
    assert_eq!(report.outcome(), Outcome::Success);
    assert_eq!(report.status(), RunStatus::Complete);
    assert_eq!(report.loaded, 1);
    // Asked once, not once per day nor retried.
    assert_eq!(src.fetched(Metric::HrvRmssd), 1);
    assert_eq!(watermark(&db.pool, "P1", Metric::HrvRmssd).await, None);
    assert_eq!(
        watermark(&db.pool, "P1", Metric::HeartRate).await,
        Some(at(SYNC_DAY, 12))
    );
    assert_eq!(report.skipped[0].reason, SkipReason::NotOffered);
    assert!(
        registry.render().contains(
            "wearhouse_ingest_metrics_skipped_total{source=\"scripted\",metric=\"hrv_rmssd\",reason=\"not_offered\"} 1"
        )
    );
    // Not a re-consent matter.
    assert!(reconsent_list(&db.pool).await.is_empty());

    // Once offered, the metric loads from where it stood: the enrolment day.
    src.not_offered.lock().unwrap().clear();
    run(&db.pool, &src, &metrics).await;
    assert_eq!(rows(&db.pool, "P1", Metric::HrvRmssd).await, 3);
}

#[tokio::test]
async fn the_study_and_the_command_line_choose_which_metrics_are_fetched() {
    let db = TestDb::new(TestBackend::Postgres).await;
    enrol(&db.pool, "P1", SOURCE).await;
    let src = Arc::new(Scripted::default());
    // The study does not need SpO2 (or HRV): it is never fetched, so never declined either.
    src.decline("P1", "oxygen_saturation");
    collection::set_study_metrics(&db.pool, "default", Some(&[Metric::HeartRate]))
        .await
        .unwrap();
    let report = run(&db.pool, &src, &IngestMetrics::unregistered()).await;
    assert_eq!(report.status(), RunStatus::Complete);
    assert!(report.skipped.is_empty());
    assert_eq!(src.fetched(Metric::Spo2) + src.fetched(Metric::HrvRmssd), 0);
    assert_eq!(src.fetched(Metric::HeartRate), 3);
    assert!(reconsent_list(&db.pool).await.is_empty());

    // Every metric for the study again, but only HRV on the command line.
    collection::set_study_metrics(&db.pool, "default", None)
        .await
        .unwrap();
    let args = PipelineArgs {
        metrics: Some(vec![Metric::HrvRmssd]),
        ..PipelineArgs::default()
    };
    run_with(&db.pool, &src, &IngestMetrics::unregistered(), args).await;
    assert_eq!(src.fetched(Metric::HrvRmssd), 3);
    assert_eq!(src.fetched(Metric::Spo2), 0);

    let unknown = collection::set_study_metrics(&db.pool, "no-such-study", None).await;
    assert!(unknown.unwrap_err().to_string().contains("no-such-study"));
}

#[tokio::test]
async fn the_time_reconsent_was_first_needed_is_kept_and_participants_waiting_too_long_are_exported()
 {
    let db = TestDb::new(TestBackend::Postgres).await;
    enrol(&db.pool, "P1", SOURCE).await;
    enrol(&db.pool, "P2", SOURCE).await;
    let id = ParticipantId::parse("P1").unwrap();
    let since = |pool: PgPool| async move {
        sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
            "select reconsent_since from participants where participant_id = 'P1'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let mut conn = db.pool.acquire().await.unwrap();
    participants::set_needs_reconsent(&mut conn, &id, Some("invalid_grant"))
        .await
        .unwrap();
    let first = since(db.pool.clone()).await.expect("set with the flag");
    participants::set_needs_reconsent(&mut conn, &id, Some("revoked"))
        .await
        .unwrap();
    assert_eq!(since(db.pool.clone()).await, Some(first), "kept while set");

    // Ten days ago, by the alert's measure.
    sqlx::query("update participants set reconsent_since = now() - interval '10 days'")
        .execute(&db.pool)
        .await
        .unwrap();
    let registry = MetricsRegistry::new();
    let metrics = IngestMetrics::register(&registry);
    let src = Arc::new(Scripted::default());
    let report = run(&db.pool, &src, &metrics).await;
    assert_eq!(report.awaiting_reconsent, ["P1"]);
    assert_eq!(
        report.status(),
        RunStatus::Incomplete,
        "P1's data is missing"
    );
    assert!(
        report
            .summary()
            .contains("need re-consent: 1: P1; see `wearhouse-ingest reconsent-list`")
    );
    let text = registry.render();
    assert!(
        text.contains("wearhouse_ingest_participants_needing_reconsent_longer{days=\"7\"} 1"),
        "{text}"
    );
    let listed = reconsent_list(&db.pool).await;
    assert_eq!(listed[0].kind, ReconsentKind::GrantBroken);
    assert!(listed[0].since < Utc::now() - Duration::days(9));

    let args = PipelineArgs {
        reconsent_alert_days: 14,
        ..PipelineArgs::default()
    };
    run_with(&db.pool, &src, &metrics, args).await;
    assert!(
        registry
            .render()
            .contains("wearhouse_ingest_participants_needing_reconsent_longer{days=\"14\"} 0")
    );

    // A new consent clears the flag and the time with it.
    participants::set_needs_reconsent(&mut conn, &id, None)
        .await
        .unwrap();
    assert_eq!(since(db.pool.clone()).await, None);
}

/// `wearhouse-ingest run` over `url` with the synthetic provider only, heart rate only.
async fn run_binary(url: &str) -> (Option<i32>, String) {
    let Output { status, stderr, .. } =
        tokio::process::Command::new(env!("CARGO_BIN_EXE_wearhouse-ingest"))
            .args(["run", "--database-url", url, "--metrics", "heart_rate"])
            .env_remove("WEARHOUSE_FITBIT_CLIENT_ID")
            .env_remove("WEARHOUSE_GOOGLE_CLIENT_ID")
            .output()
            .await
            .unwrap();
    (status.code(), String::from_utf8_lossy(&stderr).into_owned())
}

#[tokio::test]
async fn run_exits_0_when_all_is_loaded_1_on_a_failure_and_3_when_participants_wait() {
    let db = TestDb::new(TestBackend::Postgres).await;
    let mut conn = db.pool.acquire().await.unwrap();
    let synthetic = |id: &'static str| {
        let pool = db.pool.clone();
        async move {
            let mut conn = pool.acquire().await.unwrap();
            participants::upsert(
                &mut conn,
                &NewParticipant {
                    participant_id: ParticipantId::parse(id).unwrap(),
                    timezone: chrono_tz::UTC,
                    provider: Some("synthetic".into()),
                    enrolled_at: Some(Utc::now() - Duration::days(1)),
                    study_id: None,
                },
            )
            .await
            .unwrap();
            participants::set_provider_user_id(
                &mut *conn,
                &ParticipantId::parse(id).unwrap(),
                "seed-1",
            )
            .await
            .unwrap();
        }
    };
    synthetic("S1").await;
    synthetic("S2").await;

    let (code, stderr) = run_binary(&db.url).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("run: 2 participant(s): 2 loaded"),
        "{stderr}"
    );

    // A participant of a provider without a client id: a failure that says what to set.
    enrol(&db.pool, "F1", "fitbit").await;
    let (code, stderr) = run_binary(&db.url).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("failed: 1: F1 (provider \"fitbit\" is not configured: set WEARHOUSE_FITBIT_CLIENT_ID (--fitbit-client-id)"),
        "{stderr}"
    );
    sqlx::query("delete from participants where participant_id = 'F1'")
        .execute(&db.pool)
        .await
        .unwrap();

    // Nothing failed, but one participant needs re-consent and another process holds one.
    participants::set_needs_reconsent(
        &mut conn,
        &ParticipantId::parse("S2").unwrap(),
        Some("invalid_grant"),
    )
    .await
    .unwrap();
    let held: bool = sqlx::query_scalar(
        "select pg_try_advisory_lock(hashtextextended('wearhouse-ingest:' || 'S1', 0))",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert!(held);
    let (code, stderr) = run_binary(&db.url).await;
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("locked by another process: 1: S1"),
        "{stderr}"
    );
    assert!(stderr.contains("need re-consent: 1: S2"), "{stderr}");
}

#[tokio::test]
async fn a_fitbit_participant_who_declined_spo2_is_loaded_without_it_and_listed_with_the_scope() {
    let env = crate::support::fitbit::env(vec![
        wearhouse_fakes::FakeUser::new("7QX2LB", chrono_tz::Europe::Berlin)
            .last_sync("2025-06-03T12:00:00")
            .deny_scope("oxygen_saturation"),
    ])
    .await;
    let grant = crate::support::fitbit::grant(env.fake.issue_tokens("7QX2LB"));
    assert!(
        !grant
            .scope
            .as_deref()
            .unwrap()
            .contains("oxygen_saturation")
    );
    let enrolled = chrono_tz::Europe::Berlin
        .with_ymd_and_hms(2025, 6, 1, 0, 0, 0)
        .unwrap()
        .to_utc();
    crate::support::enrol(
        &env.db.pool,
        "P-FIT",
        "fitbit",
        chrono_tz::Europe::Berlin,
        Some(enrolled),
        &grant,
    )
    .await;
    let sources = Sources::from_sources([Arc::new(env.worker()) as Arc<dyn Source>]);
    let report = Pipeline::new(
        env.db.pool.clone(),
        sources,
        IngestMetrics::unregistered(),
        PipelineArgs::default(),
    )
    .await
    .unwrap()
    .run(&CancellationToken::new())
    .await
    .unwrap();
    assert_eq!(report.status(), RunStatus::Complete, "{}", report.summary());
    let skipped: Vec<_> = report
        .skipped
        .iter()
        .map(|s| (s.metric, s.detail.as_str()))
        .collect();
    assert_eq!(skipped, [(Metric::Spo2, "oxygen_saturation")]);
    assert!(rows(&env.db.pool, "P-FIT", Metric::HeartRate).await > 1000);
    assert_eq!(rows(&env.db.pool, "P-FIT", Metric::Spo2).await, 0);
    // Listed twice, for two reasons: Fitbit participants must move to Google Health anyway.
    let listed = reconsent_list(&env.db.pool).await;
    let kinds: Vec<_> = listed
        .iter()
        .map(|e| (e.kind, e.scope.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ReconsentKind::MoveToGoogleHealth, None),
            (ReconsentKind::ScopeNotGranted, Some("oxygen_saturation"))
        ]
    );
    let table = reconsent::table(&listed);
    assert!(table.contains("must move to Google Health"), "{table}");
    assert!(
        table.ends_with("1 participant(s) must consent again\n"),
        "{table}"
    );
}
