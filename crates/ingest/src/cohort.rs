//! The `synthetic` command: enrols a reproducible cohort and loads its study period through
//! the same pipeline and sink as the real providers. Participants are `SYN0001`… with time
//! zones drawn from a short list; the seed is stored as each participant's device id, so the
//! same command gives the same data and running it again changes nothing.

use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use clap::Args;
use rand::Rng;
use tokio_util::sync::CancellationToken;
use wearhouse_core::ParticipantId;
use wearhouse_core::config::DatabaseArgs;
use wearhouse_core::store::participants::{self, NewParticipant};

use crate::metrics::IngestMetrics;
use crate::pipeline::{Pipeline, PipelineArgs};
use crate::runs::RunReport;
use crate::sources::registry::Sources;
use crate::sources::synthetic::{self, SyntheticSource, local_day_start};

/// Zones of the cohort: both hemispheres, both sides of UTC, with and without daylight saving.
const ZONES: [chrono_tz::Tz; 6] = [
    chrono_tz::Europe::London,
    chrono_tz::Europe::Berlin,
    chrono_tz::America::New_York,
    chrono_tz::America::Los_Angeles,
    chrono_tz::Asia::Tokyo,
    chrono_tz::Australia::Sydney,
];

/// Settings of `wearhouse-ingest synthetic`.
#[derive(Debug, Clone, Args)]
pub struct CohortArgs {
    /// Number of participants (SYN0001, SYN0002, …).
    #[arg(long, env = "WEARHOUSE_SYNTHETIC_PARTICIPANTS", default_value_t = 10)]
    pub participants: u32,

    /// Length of the study in days.
    #[arg(long, env = "WEARHOUSE_SYNTHETIC_DAYS", default_value_t = 7)]
    pub days: u32,

    /// First day of the study (each participant's local day).
    #[arg(long, env = "WEARHOUSE_SYNTHETIC_START", value_name = "YYYY-MM-DD")]
    pub start: NaiveDate,

    /// Random seed: the same seed gives the same cohort and data.
    #[arg(long, env = "WEARHOUSE_SYNTHETIC_SEED", default_value_t = 1)]
    pub seed: u64,

    /// The study the cohort joins (`wearhouse-api study add` creates others).
    #[arg(long, env = "WEARHOUSE_SYNTHETIC_STUDY", default_value = "demo")]
    pub study: String,

    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// The participant id of cohort member `n` (from 1).
pub fn participant_id(n: u32) -> ParticipantId {
    ParticipantId::parse(&format!("SYN{n:04}")).expect("valid id")
}

/// Enrols the cohort and loads it; returns the run's report.
pub async fn run(args: &CohortArgs, cancel: &CancellationToken) -> anyhow::Result<RunReport> {
    anyhow::ensure!(args.participants > 0, "--participants must be at least 1");
    anyhow::ensure!(args.days > 0, "--days must be at least 1");
    let pool = args.database.connect().await?;
    let mut ids = Vec::new();
    {
        let mut conn = pool.acquire().await?;
        for n in 1..=args.participants {
            let id = participant_id(n);
            let mut r = synthetic::stream(args.seed, id.as_str(), 0, "zone");
            let tz = ZONES[r.gen_range(0..ZONES.len())];
            participants::upsert(
                &mut conn,
                &NewParticipant {
                    participant_id: id.clone(),
                    timezone: tz,
                    provider: Some(synthetic::NAME.into()),
                    enrolled_at: Some(local_day_start(args.start, tz)),
                    study_id: Some(args.study.clone()),
                },
            )
            .await?;
            participants::set_provider_user_id(&mut *conn, &id, &synthetic::device_id(args.seed))
                .await?;
            ids.push(id.to_string());
        }
    }
    tracing::info!(
        participants = args.participants,
        days = args.days,
        start = %args.start,
        seed = args.seed,
        "synthetic cohort enrolled"
    );
    let source = SyntheticSource::study(args.start, args.days);
    let mut pipeline_args = args.pipeline.clone();
    // Generating is cheap; the database does the work, so one writer per core.
    pipeline_args.workers = pipeline_args.workers.or_else(|| {
        std::thread::available_parallelism()
            .ok()
            .map(std::num::NonZeroUsize::get)
    });
    let pipeline = Pipeline::new(
        pool.clone(),
        Sources::from_sources([Arc::new(source) as _]),
        IngestMetrics::unregistered(),
        pipeline_args,
    )
    .await?
    .only(ids);
    let clock = Instant::now();
    let report = pipeline.run(cancel).await?;
    let seconds = clock.elapsed().as_secs_f64();
    tracing::info!(
        samples = report.samples,
        changed = report.changed,
        seconds,
        rows_per_second = (report.samples as f64 / seconds.max(1e-9)).round(),
        "synthetic load finished"
    );
    pool.close().await;
    Ok(report)
}
