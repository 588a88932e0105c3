//! Write benchmark: N generated samples through the sample writer, and in the same run the same
//! rows through `psql \copy` into the same schema, on every backend this machine has.
//!
//! ```sh
//! cargo bench -p wearhouse-core --bench write                  # 1,000,000 rows
//! WEARHOUSE_BENCH_ROWS=200000 cargo bench -p wearhouse-core --bench write
//! ```
//!
//! Each side gets its own fresh database. The writer runs in batches of
//! `WEARHOUSE_BENCH_BATCH` rows (default 50,000, what the ingest sink uses) and includes what
//! a real load pays for: staging, upsert and, where the rollups are tables, their upkeep; on
//! TimescaleDB, the continuous-aggregate refresh of the loaded span is timed separately.

use std::io::Write as _;
use std::process::Command;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use wearhouse_core::store::writer::{SampleWriter, refresh_rollups};
use wearhouse_core::testing::{TestDb, backends};
use wearhouse_core::{Metric, ParticipantId, Sample};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Heart rate every 5 s for a handful of participants, in time order per participant, as a
/// day's load arrives.
fn generate(rows: usize) -> Vec<Sample> {
    let start: DateTime<Utc> = "2025-06-01T00:00:00Z".parse().unwrap();
    let participants: Vec<ParticipantId> = (0..10)
        .map(|i| ParticipantId::parse(&format!("P{i:03}")).unwrap())
        .collect();
    let per = rows.div_ceil(participants.len());
    let mut out = Vec::with_capacity(rows);
    for p in &participants {
        for k in 0..per {
            if out.len() == rows {
                break;
            }
            let v = 60.0 + ((k * 7919) % 600) as f64 / 10.0;
            let t = start + Duration::seconds(5 * k as i64);
            out.push(Sample::numeric(p.clone(), Metric::HeartRate, t, v));
        }
    }
    out
}

fn csv(samples: &[Sample]) -> tempfile_path::Path {
    let path = tempfile_path::Path::new("wearhouse-bench-copy.csv");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path.0).unwrap());
    for s in samples {
        writeln!(
            f,
            "{},{},{},{},",
            s.timestamp.format("%Y-%m-%d %H:%M:%S%.6f+00"),
            s.participant_id,
            s.metric,
            s.value_numeric.unwrap()
        )
        .unwrap();
    }
    f.flush().unwrap();
    path
}

mod tempfile_path {
    /// A file in the temporary folder, removed on drop.
    pub struct Path(pub std::path::PathBuf);
    impl Path {
        pub fn new(name: &str) -> Self {
            Path(std::env::temp_dir().join(format!("{}-{name}", std::process::id())))
        }
    }
    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[tokio::main]
async fn main() {
    // cargo bench passes --bench; nothing else is accepted.
    let rows = env_usize("WEARHOUSE_BENCH_ROWS", 1_000_000);
    let batch = env_usize("WEARHOUSE_BENCH_BATCH", 50_000);
    let samples = generate(rows);
    let file = csv(&samples);
    println!("rows: {rows}, writer batch: {batch}");
    println!(
        "{:<22} {:>14} {:>14} {:>8} {:>14}",
        "backend", "writer rows/s", "\\copy rows/s", "ratio", "cagg refresh s"
    );
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        let writer = SampleWriter::new(&db.backend);
        let mut conn = db.pool.acquire().await.unwrap();
        let t0 = Instant::now();
        let mut span = None;
        for chunk in samples.chunks(batch) {
            let s = writer.write(&mut conn, chunk).await.unwrap();
            span = match (span, s.changed_range()) {
                (None, r) => r,
                (Some(a), Some(b)) => Some(wearhouse_core::TimeRange {
                    start: a.start.min(b.start),
                    end: a.end.max(b.end),
                }),
                (a, None) => a,
            };
        }
        let writer_secs = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        if let Some(range) = span {
            refresh_rollups(&mut conn, &db.backend, range)
                .await
                .unwrap();
        }
        let refresh_secs = t1.elapsed().as_secs_f64();

        let target = TestDb::new(backend).await;
        let t2 = Instant::now();
        let out = Command::new("psql")
            .arg(&target.url)
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
            .arg(format!(
                "\\copy raw_data (timestamp, participant_id, data_type, value_numeric, value_text) \
                 from '{}' with (format csv)",
                file.0.display()
            ))
            .output()
            .expect("run psql");
        let copy_secs = t2.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let count: i64 = sqlx::query_scalar("select count(*) from raw_data")
            .fetch_one(&target.pool)
            .await
            .unwrap();
        assert_eq!(count as usize, rows);
        let (w, c) = (rows as f64 / writer_secs, rows as f64 / copy_secs);
        println!(
            "{:<22} {:>14.0} {:>14.0} {:>7.0}% {:>14}",
            db.backend.kind.to_string()
                + if db.backend.rollups_are_tables {
                    "+tables"
                } else {
                    ""
                },
            w,
            c,
            100.0 * w / c,
            if db.backend.rollups_are_tables {
                "-".to_owned()
            } else {
                format!("{refresh_secs:.2}")
            }
        );
    }
}
