//! Write benchmark: N generated samples through the sample writer, and in the same round the
//! same rows through `psql \copy` into the same schema, on every backend this machine has.
//!
//! ```sh
//! cargo bench -p wearhouse-core --bench write                        # both densities, 5 rounds
//! cargo bench -p wearhouse-core --bench write -- --density 1m --rounds 3
//! WEARHOUSE_BENCH_ROWS=200000 cargo bench -p wearhouse-core --bench write
//! ```
//!
//! Two data sets (`--density`, or `WEARHOUSE_BENCH_DENSITY`): `5s`, heart rate every 5 s
//! (about twelve samples per 1-minute bucket), and `1m`, one heart-rate sample a minute (one
//! sample per bucket, so keeping the 1-minute rollup table current costs as much as the raw
//! rows themselves); `all` (the default) runs both.
//!
//! Each round gives each side its own fresh database and runs the writer then `\copy`, so a
//! burst of load from elsewhere on the machine hits both sides of a round alike; the ratio is
//! taken per round, and min/median/max are reported over the rounds (`--rounds`, or
//! `WEARHOUSE_BENCH_ROUNDS`, default 5). The writer runs in batches of `WEARHOUSE_BENCH_BATCH`
//! rows (default 50,000, what the ingest sink uses) and includes what a real load pays for:
//! staging, upsert and, where the rollups are tables, their upkeep; on TimescaleDB, the
//! continuous-aggregate refresh of the loaded span is timed separately. Where the server runs
//! on this machine (the test cluster), each side's database backend CPU time is read from
//! `/proc` too: a ratio that other load on the machine hardly moves.

use std::io::Write as _;
use std::process::Command;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use wearhouse_core::store::writer::{SampleWriter, refresh_rollups};
use wearhouse_core::testing::{TestBackend, TestDb, backends};
use wearhouse_core::{Metric, ParticipantId, Sample, TimeRange};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A data set: how far apart one participant's heart-rate samples are.
#[derive(Debug, Clone, Copy)]
enum Density {
    /// Every 5 s: about twelve samples per 1-minute bucket.
    FiveSeconds,
    /// One a minute: one sample per 1-minute bucket.
    Minute,
}

impl Density {
    fn step_seconds(self) -> i64 {
        match self {
            Density::FiveSeconds => 5,
            Density::Minute => 60,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Density::FiveSeconds => "5s",
            Density::Minute => "1m",
        }
    }
}

/// `--density` and `--rounds` (cargo bench also passes `--bench`, which is ignored).
fn options() -> (Vec<Density>, usize) {
    let mut density = std::env::var("WEARHOUSE_BENCH_DENSITY").unwrap_or_else(|_| "all".into());
    let mut rounds = env_usize("WEARHOUSE_BENCH_ROUNDS", 5);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--density" => density = args.next().expect("--density takes 5s, 1m or all"),
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rounds takes a number")
            }
            _ => {}
        }
    }
    let densities = match density.as_str() {
        "5s" => vec![Density::FiveSeconds],
        "1m" => vec![Density::Minute],
        "all" => vec![Density::FiveSeconds, Density::Minute],
        other => panic!("unknown density {other:?}: 5s, 1m or all"),
    };
    (densities, rounds.max(1))
}

/// Heart rate at `density` for a handful of participants, in time order per participant, as
/// a day's load arrives.
fn generate(rows: usize, density: Density) -> Vec<Sample> {
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
            let t = start + Duration::seconds(density.step_seconds() * k as i64);
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

/// One round's timings, in seconds; `*_cpu` is the CPU time of the database backend that did
/// the work (`None` when the server is not on this machine).
struct Round {
    writer: f64,
    writer_cpu: Option<f64>,
    copy: f64,
    copy_cpu: Option<f64>,
    refresh: f64,
}

/// CPU seconds (user and system) a local process has used so far, from `/proc`. The ratio of
/// the two backends' CPU time hardly moves with the load of other processes on the machine,
/// where the wall-clock ratio does.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name: state is the first, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The writer's load of `samples` into a fresh database: write time, the backend's CPU time
/// for it, and the refresh time.
async fn through_writer(
    backend: TestBackend,
    samples: &[Sample],
    batch: usize,
) -> (f64, Option<f64>, f64) {
    let db = TestDb::new(backend).await;
    let writer = SampleWriter::new(&db.backend);
    let mut conn = db.pool.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let cpu0 = cpu_secs(pid as u32);
    let t0 = Instant::now();
    let mut span: Option<TimeRange> = None;
    for chunk in samples.chunks(batch) {
        let s = writer.write(&mut conn, chunk).await.unwrap();
        span = match (span, s.changed_range()) {
            (Some(a), Some(b)) => Some(TimeRange {
                start: a.start.min(b.start),
                end: a.end.max(b.end),
            }),
            (a, b) => a.or(b),
        };
    }
    let writer_secs = t0.elapsed().as_secs_f64();
    let cpu = cpu0.zip(cpu_secs(pid as u32)).map(|(a, b)| b - a);
    let t1 = Instant::now();
    if let Some(range) = span {
        refresh_rollups(&mut conn, &db.backend, range)
            .await
            .unwrap();
    }
    (writer_secs, cpu, t1.elapsed().as_secs_f64())
}

/// `psql \copy` of the CSV `file` into a fresh database: seconds, and the backend's CPU time.
/// psql is driven line by line so that its backend can be measured before it exits.
async fn through_copy(
    backend: TestBackend,
    file: &std::path::Path,
    rows: usize,
) -> (f64, Option<f64>) {
    use std::io::BufRead as _;
    let target = TestDb::new(backend).await;
    let mut psql = Command::new("psql")
        .arg(&target.url)
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run psql");
    let mut input = psql.stdin.take().unwrap();
    let mut output = std::io::BufReader::new(psql.stdout.take().unwrap()).lines();
    writeln!(input, "select pg_backend_pid();").unwrap();
    let pid: u32 = output.next().unwrap().unwrap().trim().parse().unwrap();
    let cpu0 = cpu_secs(pid);
    let t0 = Instant::now();
    writeln!(
        input,
        "\\copy raw_data (timestamp, participant_id, data_type, value_numeric, value_text) \
         from '{}' with (format csv)\n\\echo copied",
        file.display()
    )
    .unwrap();
    assert_eq!(
        output.next().unwrap().unwrap(),
        "copied",
        "psql \\copy failed"
    );
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu0.zip(cpu_secs(pid)).map(|(a, b)| b - a);
    drop(input);
    assert!(psql.wait().unwrap().success());
    let count: i64 = sqlx::query_scalar("select count(*) from raw_data")
        .fetch_one(&target.pool)
        .await
        .unwrap();
    assert_eq!(count as usize, rows);
    (secs, cpu)
}

/// Minimum, median and maximum of `values`.
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    (values[0], median, values[n - 1])
}

#[tokio::main]
async fn main() {
    let (densities, rounds) = options();
    let rows = env_usize("WEARHOUSE_BENCH_ROWS", 1_000_000);
    let batch = env_usize("WEARHOUSE_BENCH_BATCH", 50_000);
    println!("rows: {rows}, writer batch: {batch}, rounds: {rounds}");
    for density in densities {
        let samples = generate(rows, density);
        let file = csv(&samples);
        for backend in backends().await {
            let label = match backend {
                TestBackend::Postgres => "postgres+tables",
                TestBackend::Timescaledb => "timescaledb",
            };
            let mut results = Vec::with_capacity(rounds);
            for round in 1..=rounds {
                let (writer, writer_cpu, refresh) = through_writer(backend, &samples, batch).await;
                let (copy, copy_cpu) = through_copy(backend, &file.0, rows).await;
                let r = Round {
                    writer,
                    writer_cpu,
                    copy,
                    copy_cpu,
                    refresh,
                };
                println!(
                    "density {:<3} {label:<16} round {round}: writer {:>8.0} rows/s, \\copy {:>8.0} \
                     rows/s, ratio {:.2}; backend CPU writer {} s, \\copy {} s{}",
                    density.name(),
                    rows as f64 / r.writer,
                    rows as f64 / r.copy,
                    r.copy / r.writer,
                    r.writer_cpu.map_or("-".into(), |c| format!("{c:.2}")),
                    r.copy_cpu.map_or("-".into(), |c| format!("{c:.2}")),
                    if backend == TestBackend::Timescaledb {
                        format!(", cagg refresh {:.2} s", r.refresh)
                    } else {
                        String::new()
                    }
                );
                results.push(r);
            }
            let (w0, w1, w2) = spread(results.iter().map(|r| rows as f64 / r.writer).collect());
            let (c0, c1, c2) = spread(results.iter().map(|r| rows as f64 / r.copy).collect());
            let (q0, q1, q2) = spread(results.iter().map(|r| r.copy / r.writer).collect());
            println!(
                "density {:<3} {label:<16} min/median/max over {rounds}: writer \
                 {w0:.0}/{w1:.0}/{w2:.0} rows/s, \\copy {c0:.0}/{c1:.0}/{c2:.0} rows/s, \
                 writer/\\copy {q0:.2}/{q1:.2}/{q2:.2}",
                density.name(),
            );
            let cpu: Option<Vec<f64>> = results
                .iter()
                .map(|r| Some(r.copy_cpu? / r.writer_cpu?))
                .collect();
            if let Some(cpu) = cpu {
                let (k0, k1, k2) = spread(cpu);
                println!(
                    "density {:<3} {label:<16} backend CPU, \\copy/writer: {k0:.2}/{k1:.2}/{k2:.2}",
                    density.name(),
                );
            }
            if backend == TestBackend::Timescaledb {
                let (r0, r1, r2) = spread(results.iter().map(|r| r.refresh).collect());
                println!(
                    "density {:<3} {label:<16} cagg refresh {r0:.2}/{r1:.2}/{r2:.2} s",
                    density.name()
                );
            }
        }
    }
}
