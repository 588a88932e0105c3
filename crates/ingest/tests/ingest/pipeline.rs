//! The delta load against a real database, with a scripted provider: late syncs, days the
//! provider has not finished, spent quotas, revoked grants and provider errors.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use wearhouse_core::store::ingest_state;
use wearhouse_core::store::participants::{self, NewParticipant};
use wearhouse_core::testing::{TestDb, backends};
use wearhouse_core::{Metric, ParticipantId, Sample};
use wearhouse_ingest::metrics::{IngestMetrics, Outcome};
use wearhouse_ingest::pipeline::{Pipeline, PipelineArgs, RunReport};
use wearhouse_ingest::sources::registry::Sources;
use wearhouse_ingest::sources::{Fetched, Source, SourceError, SourceParticipant};

/// What the scripted provider does for one participant.
#[derive(Default)]
struct Device {
    last_sync: Option<DateTime<Utc>>,
    samples: Vec<Sample>,
    /// Sleep for these local days is still being processed.
    pending: BTreeSet<NaiveDate>,
    /// Requests left before the quota is spent (`None`: unlimited).
    quota: Option<u32>,
    revoked: bool,
    broken: bool,
}

/// A provider whose devices the test scripts; it records every fetch.
#[derive(Default)]
struct Scripted {
    devices: Mutex<BTreeMap<String, Device>>,
    fetches: Mutex<Vec<(String, Metric, NaiveDate, NaiveDate)>>,
}

impl Scripted {
    fn device<R>(&self, p: &str, f: impl FnOnce(&mut Device) -> R) -> R {
        f(self
            .devices
            .lock()
            .unwrap()
            .entry(p.to_owned())
            .or_default())
    }
}

#[async_trait]
impl Source for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn metrics(&self) -> Vec<Metric> {
        vec![Metric::HeartRate, Metric::SleepStage]
    }

    async fn last_sync(&self, p: &SourceParticipant) -> Result<Option<DateTime<Utc>>, SourceError> {
        self.device(p.id.as_str(), |d| {
            if d.revoked {
                return Err(SourceError::NeedsReconsent {
                    reason: "invalid_grant".into(),
                });
            }
            Ok(d.last_sync)
        })
    }

    async fn fetch(
        &self,
        p: &SourceParticipant,
        metric: Metric,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Fetched, SourceError> {
        self.fetches
            .lock()
            .unwrap()
            .push((p.id.to_string(), metric, from, to));
        self.device(p.id.as_str(), |d| {
            if d.broken {
                return Err(SourceError::Provider("malformed response".into()));
            }
            if let Some(q) = &mut d.quota {
                if *q == 0 {
                    return Err(SourceError::QuotaExhausted {
                        retry_after: Duration::from_secs(3600),
                    });
                }
                *q -= 1;
            }
            let sync = d.last_sync.expect("fetch only after a sync");
            let day = |s: &Sample| s.timestamp.with_timezone(&p.timezone).date_naive();
            let pending = (metric == Metric::SleepStage)
                .then(|| d.pending.range(from..=to).next().copied())
                .flatten();
            let samples = d
                .samples
                .iter()
                .filter(|s| s.metric == metric && s.timestamp <= sync)
                .filter(|s| (from..=to).contains(&day(s)) && pending.is_none_or(|p| day(s) < p))
                .cloned()
                .collect();
            Ok(Fetched {
                samples,
                incomplete_from: pending,
            })
        })
    }
}

fn at(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, d, h, 0, 0).unwrap()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, d).unwrap()
}

fn hr(p: &str, t: DateTime<Utc>, v: f64) -> Sample {
    Sample::numeric(ParticipantId::parse(p).unwrap(), Metric::HeartRate, t, v)
}

fn sleep(p: &str, t: DateTime<Utc>) -> Sample {
    Sample::sleep_stage(ParticipantId::parse(p).unwrap(), t, "deep")
}

async fn enrol(pool: &PgPool, id: &str) {
    let mut conn = pool.acquire().await.unwrap();
    participants::upsert(
        &mut conn,
        &NewParticipant {
            participant_id: ParticipantId::parse(id).unwrap(),
            timezone: chrono_tz::UTC,
            provider: Some("scripted".into()),
            enrolled_at: Some(at(1, 0)),
            study_id: None,
        },
    )
    .await
    .unwrap();
}

async fn run(pool: &PgPool, source: &Arc<Scripted>, metrics: &IngestMetrics) -> RunReport {
    let sources = Sources::from_sources([Arc::clone(source) as Arc<dyn Source>]);
    Pipeline::new(
        pool.clone(),
        sources,
        metrics.clone(),
        PipelineArgs::default(),
    )
    .await
    .unwrap()
    .run(&CancellationToken::new())
    .await
    .unwrap()
}

async fn heart_rates(pool: &PgPool, p: &str) -> Vec<(DateTime<Utc>, f64)> {
    sqlx::query_as(
        "select timestamp, value_numeric from raw_data
         where participant_id = $1 and data_type = 'heart_rate' order by timestamp",
    )
    .bind(p)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn watermark(pool: &PgPool, p: &str, m: Metric) -> Option<DateTime<Utc>> {
    let mut conn = pool.acquire().await.unwrap();
    ingest_state::get(&mut conn, &ParticipantId::parse(p).unwrap(), "scripted", m)
        .await
        .unwrap()
}

#[tokio::test]
async fn data_a_device_syncs_late_for_an_old_day_is_loaded_by_the_next_run() {
    for b in backends().await {
        let db = TestDb::new(b).await;
        enrol(&db.pool, "P1").await;
        let src = Arc::new(Scripted::default());
        let metrics = IngestMetrics::unregistered();
        src.device("P1", |d| {
            d.last_sync = Some(at(3, 10));
            d.samples = vec![hr("P1", at(1, 12), 60.0), hr("P1", at(3, 9), 61.0)];
        });
        let report = run(&db.pool, &src, &metrics).await;
        assert_eq!(report.outcome(), Outcome::Success);
        assert_eq!(
            watermark(&db.pool, "P1", Metric::HeartRate).await,
            Some(at(3, 10))
        );

        // The device uploads the rest of the 3rd (recorded before "now", synced later) and the 4th.
        src.device("P1", |d| {
            d.last_sync = Some(at(4, 8));
            d.samples.push(hr("P1", at(3, 20), 62.0));
            d.samples.push(hr("P1", at(4, 7), 63.0));
        });
        run(&db.pool, &src, &metrics).await;
        let got: Vec<f64> = heart_rates(&db.pool, "P1")
            .await
            .iter()
            .map(|r| r.1)
            .collect();
        assert_eq!(got, vec![60.0, 61.0, 62.0, 63.0], "on {b:?}");
        // The second run started at the watermark's day, not at the enrolment.
        let fetched: Vec<NaiveDate> = src
            .fetches
            .lock()
            .unwrap()
            .iter()
            .filter(|f| f.1 == Metric::HeartRate)
            .map(|f| f.2)
            .collect();
        assert_eq!(fetched, vec![day(1), day(2), day(3), day(3), day(4)]);
    }
}

#[tokio::test]
async fn a_day_the_provider_has_not_finished_is_fetched_again_and_not_skipped() {
    for b in backends().await {
        let db = TestDb::new(b).await;
        enrol(&db.pool, "P1").await;
        let src = Arc::new(Scripted::default());
        let metrics = IngestMetrics::unregistered();
        src.device("P1", |d| {
            d.last_sync = Some(at(4, 12));
            d.samples = vec![
                sleep("P1", at(1, 3)),
                sleep("P1", at(2, 3)),
                sleep("P1", at(4, 3)),
            ];
            d.pending.insert(day(2));
        });
        run(&db.pool, &src, &metrics).await;
        assert_eq!(
            watermark(&db.pool, "P1", Metric::SleepStage).await,
            Some(at(2, 0))
        );
        assert_eq!(
            watermark(&db.pool, "P1", Metric::HeartRate).await,
            Some(at(4, 12))
        );

        src.device("P1", |d| d.pending.clear());
        run(&db.pool, &src, &metrics).await;
        let n: i64 =
            sqlx::query_scalar("select count(*) from raw_data where data_type = 'sleep_stage'")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(n, 3, "the pending night is loaded once finished, on {b:?}");
        assert_eq!(
            watermark(&db.pool, "P1", Metric::SleepStage).await,
            Some(at(4, 12))
        );
    }
}

#[tokio::test]
async fn a_spent_quota_stops_the_participant_and_the_next_run_resumes_where_it_stopped() {
    for b in backends().await {
        let db = TestDb::new(b).await;
        enrol(&db.pool, "P1").await;
        enrol(&db.pool, "P2").await;
        let src = Arc::new(Scripted::default());
        let metrics = IngestMetrics::unregistered();
        for p in ["P1", "P2"] {
            src.device(p, |d| {
                d.last_sync = Some(at(5, 12));
                d.samples = (1..=5)
                    .map(|x| hr(p, at(x, 12), 60.0 + f64::from(x)))
                    .collect();
            });
        }
        // Two metrics a day: four requests cover the 1st and 2nd only.
        src.device("P1", |d| d.quota = Some(4));
        let report = run(&db.pool, &src, &metrics).await;
        assert_eq!(report.quota_exhausted, ["P1"]);
        assert_eq!(
            report.outcome(),
            Outcome::Success,
            "a spent quota is not a failure"
        );
        assert_eq!(heart_rates(&db.pool, "P1").await.len(), 2);
        assert_eq!(heart_rates(&db.pool, "P2").await.len(), 5, "others go on");
        assert_eq!(
            watermark(&db.pool, "P1", Metric::HeartRate).await,
            Some(at(3, 0))
        );

        src.device("P1", |d| d.quota = None);
        let before = src.fetches.lock().unwrap().len();
        run(&db.pool, &src, &metrics).await;
        assert_eq!(heart_rates(&db.pool, "P1").await.len(), 5);
        let resumed_from = src.fetches.lock().unwrap()[before..]
            .iter()
            .filter(|f| f.0 == "P1" && f.1 == Metric::HeartRate)
            .map(|f| f.2)
            .min();
        assert_eq!(resumed_from, Some(day(3)), "on {b:?}");
    }
}

#[tokio::test]
async fn a_revoked_grant_marks_the_participant_for_reconsent_and_the_others_are_loaded() {
    for b in backends().await {
        let db = TestDb::new(b).await;
        enrol(&db.pool, "P1").await;
        enrol(&db.pool, "P2").await;
        let src = Arc::new(Scripted::default());
        let registry = wearhouse_core::telemetry::MetricsRegistry::new();
        let metrics = IngestMetrics::register(&registry);
        src.device("P1", |d| d.revoked = true);
        src.device("P2", |d| {
            d.last_sync = Some(at(2, 12));
            d.samples = vec![hr("P2", at(2, 1), 70.0)];
        });
        let report = run(&db.pool, &src, &metrics).await;
        assert_eq!(report.needs_reconsent, ["P1"]);
        assert_eq!(report.loaded, 1);
        let mut conn = db.pool.acquire().await.unwrap();
        let p1 = participants::get(&mut conn, &ParticipantId::parse("P1").unwrap())
            .await
            .unwrap();
        assert!(p1.needs_reconsent);
        assert_eq!(p1.reconsent_reason.as_deref(), Some("invalid_grant"));
        assert_eq!(heart_rates(&db.pool, "P2").await.len(), 1);
        assert!(
            registry
                .render()
                .contains("wearhouse_ingest_participants_needing_reconsent 1")
        );

        // Later runs leave the participant alone until they consent again.
        let report = run(&db.pool, &src, &metrics).await;
        assert_eq!(report.participants, 1, "on {b:?}");
    }
}

#[tokio::test]
async fn a_provider_error_fails_the_run_records_the_error_and_spares_the_others() {
    for b in backends().await {
        let db = TestDb::new(b).await;
        enrol(&db.pool, "P1").await;
        enrol(&db.pool, "P2").await;
        let src = Arc::new(Scripted::default());
        let metrics = IngestMetrics::unregistered();
        for p in ["P1", "P2"] {
            src.device(p, |d| {
                d.last_sync = Some(at(2, 12));
                d.samples = vec![hr(p, at(2, 1), 70.0)];
            });
        }
        src.device("P1", |d| d.broken = true);
        let report = run(&db.pool, &src, &metrics).await;
        assert_eq!(report.outcome(), Outcome::Failure);
        assert_eq!(report.failed.len(), 1);
        assert_eq!(heart_rates(&db.pool, "P2").await.len(), 1);
        let error: Option<String> = sqlx::query_scalar(
            "select last_error from ingest_state where participant_id = 'P1' and data_type = 'heart_rate'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert!(error.unwrap().contains("malformed response"), "on {b:?}");
        assert_eq!(
            watermark(&db.pool, "P1", Metric::HeartRate).await,
            Some(at(1, 0))
        );
        let (outcome,): (String,) =
            sqlx::query_as("select outcome from ingest_runs order by id desc limit 1")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        assert_eq!(outcome, "failure");
    }
}

#[tokio::test]
async fn a_participant_held_by_another_worker_is_skipped_not_loaded_twice() {
    let db = TestDb::new(wearhouse_core::testing::TestBackend::Postgres).await;
    enrol(&db.pool, "P1").await;
    let src = Arc::new(Scripted::default());
    src.device("P1", |d| {
        d.last_sync = Some(at(1, 12));
        d.samples = vec![hr("P1", at(1, 1), 70.0)];
    });
    // Another process holds the participant's lock.
    let mut other = db.pool.acquire().await.unwrap();
    let held: bool = sqlx::query_scalar(
        "select pg_try_advisory_lock(hashtextextended('wearhouse-ingest:' || 'P1', 0))",
    )
    .fetch_one(&mut *other)
    .await
    .unwrap();
    assert!(held);
    let report = run(&db.pool, &src, &IngestMetrics::unregistered()).await;
    assert_eq!(report.locked, ["P1"]);
    assert!(src.fetches.lock().unwrap().is_empty());
    drop(other);
}
