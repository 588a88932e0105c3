//! The nightly delta at a trial's size: N Fitbit participants, each enrolled with the fake
//! Fitbit (its per-user hourly quota of 150 requests and its answers as the real API gives
//! them), are loaded by the real `wearhouse-ingest run` binary, first for the enrolment day,
//! then, a day later on the fake's clock, for the day their trackers synced since: the night's
//! delta, with every access token expired (Fitbit's last 8 hours) so each participant also
//! refreshes its grant, as every real night does.
//!
//! ```sh
//! cargo bench -p wearhouse-ingest --bench nightly                       # 1,000 participants
//! cargo bench -p wearhouse-ingest --bench nightly -- --participants 200 --workers 4,16 \
//!     --latency-ms 0,250 --backend timescaledb
//! ```
//!
//! `--latency-ms` delays every data answer of the fake by that much (its network round trip
//! and server time; the fake itself answers in microseconds): with 0 a run measures our own
//! costs (database, parsing, token sealing), with a realistic latency it measures what a night
//! takes, which is then mostly waiting, and how that scales with `--workers`. For each
//! combination the bench prints the night's wall time, requests per second, requests and
//! refreshes per participant, the 429s the quota caused, rows written and the binary's peak
//! memory. Figures go to `docs/benchmarks.md`, "Nightly delta".
//!
//! Databases are made on the test cluster (see `wearhouse_core::testing`), one per case.

use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeZone as _, Utc};
use chrono_tz::Tz;
use wearhouse_core::ParticipantId;
use wearhouse_core::crypto::TokenKey;
use wearhouse_core::store::participants::{self, NewParticipant};
use wearhouse_core::testing::{TestBackend, TestDb};
use wearhouse_fakes::{FakeFitbit, FakeFitbitConfig, FakeUser};
use wearhouse_ingest::oauth::{TokenResponse, store};

const CLIENT_ID: &str = "23ABCD";
const SECRET: &str = "fake-client-secret";
/// Participants' zones, taken in turn: a trial across several continents.
const ZONES: [Tz; 4] = [
    Tz::Europe__London,
    Tz::America__New_York,
    Tz::America__Los_Angeles,
    Tz::Asia__Tokyo,
];
/// The enrolment day; trackers sync at 06:00 local on the next day (first run) and the day
/// after (the measured night).
const ENROLLED: (i32, u32, u32) = (2025, 6, 1);

struct Settings {
    participants: usize,
    workers: Vec<usize>,
    latencies_ms: Vec<u64>,
    backend: TestBackend,
}

fn list<T: std::str::FromStr>(flag: &str, v: &str) -> Vec<T> {
    v.split(',')
        .map(|x| {
            x.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{flag}: {x:?} is not a number"))
        })
        .collect()
}

fn settings() -> Settings {
    let mut s = Settings {
        participants: 1_000,
        workers: vec![4, 16, 64],
        latencies_ms: vec![0, 250],
        backend: TestBackend::Postgres,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        // `cargo bench` passes `--bench` to every bench target.
        if flag == "--bench" {
            continue;
        }
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--participants" => s.participants = list("--participants", &value)[0],
            "--workers" => s.workers = list("--workers", &value),
            "--latency-ms" => s.latencies_ms = list("--latency-ms", &value),
            "--backend" => {
                s.backend = match value.as_str() {
                    "postgres" => TestBackend::Postgres,
                    "timescaledb" => TestBackend::Timescaledb,
                    other => panic!("--backend {other}: use postgres or timescaledb"),
                }
            }
            other => panic!(
                "unknown option {other}; options: --participants N --workers W,… \
                 --latency-ms L,… --backend postgres|timescaledb"
            ),
        }
    }
    s
}

/// One timed `wearhouse-ingest run`.
struct Run {
    seconds: f64,
    exit: i32,
    max_rss_mib: f64,
}

async fn run_ingest(
    db: &TestDb,
    fake: &FakeFitbit,
    key_file: &std::path::Path,
    workers: usize,
) -> Run {
    let started = Instant::now();
    let out = tokio::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_wearhouse-ingest"))
        .args(["--log-format", "json", "run", "--database-url", &db.url])
        .args(["--workers", &workers.to_string()])
        .args([
            "--fitbit-client-id",
            CLIENT_ID,
            "--fitbit-client-secret",
            SECRET,
        ])
        .args(["--fitbit-api-url", &fake.url()])
        .args(["--fitbit-authorize-url", &fake.authorize_url()])
        .env("WEARHOUSE_TOKEN_KEY_FILE", key_file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("start /usr/bin/time (Debian package `time`)");
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rss_kib: f64 = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let exit = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Exit status: "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    if exit != 0 {
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        eprintln!("run exited {exit}:");
        for l in tail.iter().rev() {
            eprintln!("  {l}");
        }
    }
    Run {
        seconds,
        exit,
        max_rss_mib: rss_kib / 1024.0,
    }
}

fn users(n: usize, synced: NaiveDate) -> Vec<FakeUser> {
    let sync = format!("{}T06:00:00", synced.format("%Y-%m-%d"));
    (0..n)
        .map(|i| FakeUser::new(&format!("U{i:05}"), ZONES[i % ZONES.len()]).last_sync(&sync))
        .collect()
}

async fn rows(db: &TestDb) -> i64 {
    sqlx::query_scalar("select count(*) from raw_data")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn case(
    s: &Settings,
    key: &TokenKey,
    key_file: &std::path::Path,
    workers: usize,
    latency_ms: u64,
) {
    let db = TestDb::new(s.backend).await;
    let fake = FakeFitbit::start(FakeFitbitConfig::server_app(CLIENT_ID, SECRET)).await;
    let enrolled = NaiveDate::from_ymd_opt(ENROLLED.0, ENROLLED.1, ENROLLED.2).unwrap();
    for u in users(s.participants, enrolled.succ_opt().unwrap()) {
        fake.add_user(u);
    }
    let mut conn = db.pool.acquire().await.unwrap();
    for i in 0..s.participants {
        let tz = ZONES[i % ZONES.len()];
        let user = format!("U{i:05}");
        let t = fake.issue_tokens(&user);
        let id = ParticipantId::parse(&format!("N{i:05}")).unwrap();
        participants::upsert(
            &mut conn,
            &NewParticipant {
                participant_id: id.clone(),
                timezone: tz,
                provider: Some("fitbit".into()),
                enrolled_at: Some(
                    tz.from_local_datetime(&enrolled.and_hms_opt(0, 0, 0).unwrap())
                        .unwrap()
                        .to_utc(),
                ),
                study_id: None,
            },
        )
        .await
        .unwrap();
        let grant = TokenResponse {
            access_token: t.access_token,
            expires_in: t.expires_in,
            refresh_token: Some(t.refresh_token),
            scope: Some(t.scope),
            user_id: Some(t.user_id),
        };
        store::save(&mut conn, key, &id, "fitbit", &grant, Utc::now())
            .await
            .unwrap();
        sqlx::query("update participants set provider_user_id = $2 where participant_id = $1")
            .bind(id.as_str())
            .bind(&user)
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    drop(conn);

    // The first load is set-up: it runs without latency.
    let first = run_ingest(&db, &fake, key_file, workers).await;
    let first_rows = rows(&db).await;
    let first_requests = fake.requests().len();

    // A day later: every tracker has synced one more day, every access token has expired and
    // the quota's hour has turned.
    for u in users(
        s.participants,
        enrolled.succ_opt().unwrap().succ_opt().unwrap(),
    ) {
        fake.add_user(u);
    }
    fake.advance(chrono::Duration::hours(24));
    fake.set_api_latency(Duration::from_millis(latency_ms));
    let refreshes_before: u32 = (0..s.participants)
        .map(|i| fake.refresh_count(&format!("U{i:05}")))
        .sum();
    let night = run_ingest(&db, &fake, key_file, workers).await;
    let log = fake.requests();
    let night_log = &log[first_requests..];
    let requests = night_log.len();
    let quota_429 = night_log.iter().filter(|r| r.status == 429).count();
    let refreshes: u32 = (0..s.participants)
        .map(|i| fake.refresh_count(&format!("U{i:05}")))
        .sum::<u32>()
        - refreshes_before;
    let night_rows = rows(&db).await - first_rows;
    let n = s.participants as f64;
    println!(
        "{:<11} {:>5} {:>7} {:>8} {:>9.1} {:>9.1} {:>7.0} {:>8.1} {:>8.2} {:>6} {:>11} {:>8.0} {:>5}",
        match s.backend {
            TestBackend::Postgres => "postgres",
            TestBackend::Timescaledb => "timescaledb",
        },
        s.participants,
        workers,
        latency_ms,
        first.seconds,
        night.seconds,
        requests as f64 / night.seconds,
        requests as f64 / n,
        f64::from(refreshes) / n,
        quota_429,
        night_rows,
        night.max_rss_mib,
        night.exit.max(first.exit),
    );
    drop(fake);
    drop_database(db).await;
}

/// Drops a case's database: a thousand participants' two days take gigabytes.
async fn drop_database(db: TestDb) {
    use sqlx::Connection as _;
    db.pool.close().await;
    let (server, _) = db.url.rsplit_once('/').expect("a database URL");
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    sqlx::query(&format!("drop database \"{}\" with (force)", db.name))
        .execute(&mut admin)
        .await
        .unwrap();
}

#[tokio::main]
async fn main() {
    let s = settings();
    let (key, text) = TokenKey::generate();
    let key_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key_file.path(), text).unwrap();
    println!(
        "{:<11} {:>5} {:>7} {:>8} {:>9} {:>9} {:>7} {:>8} {:>8} {:>6} {:>11} {:>8} {:>5}",
        "backend",
        "n",
        "workers",
        "lat_ms",
        "first_s",
        "night_s",
        "req/s",
        "req/part",
        "refr/pt",
        "429s",
        "night_rows",
        "rss_mib",
        "exit"
    );
    for &latency in &s.latencies_ms {
        for &workers in &s.workers {
            case(&s, &key, key_file.path(), workers, latency).await;
        }
    }
}
