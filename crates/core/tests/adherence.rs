//! Adherence figures against hand-computed values, on every backend this machine has. The
//! fixture has known wear, steps, sleep and gaps for a participant in London and one in Los
//! Angeles whose evening data crosses local midnight (the same UTC day in both cases).

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use chrono_tz::{America::Los_Angeles, Europe::London};
use wearhouse_core::store::adherence::{self, AdherenceSummary};
use wearhouse_core::store::participants::{self, NewParticipant};
use wearhouse_core::store::writer::{SampleWriter, refresh_rollups};
use wearhouse_core::testing::{TestDb, backends};
use wearhouse_core::{Metric, ParticipantId, Sample, TimeRange};

fn pid(s: &str) -> ParticipantId {
    ParticipantId::parse(s).unwrap()
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// `hh:mm` local time on `day` in `tz`, as an instant.
fn local(tz: Tz, day: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    tz.from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

/// Heart rate every `step` seconds over `[from, to)`.
fn heart_rate(p: &str, from: DateTime<Utc>, to: DateTime<Utc>, step: i64) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut t = from;
    while t < to {
        out.push(Sample::numeric(pid(p), Metric::HeartRate, t, 62.0));
        t += Duration::seconds(step);
    }
    out
}

/// `per_minute` steps every minute over `[from, to)`.
fn steps(p: &str, from: DateTime<Utc>, to: DateTime<Utc>, per_minute: f64) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut t = from;
    while t < to {
        out.push(Sample::numeric(pid(p), Metric::Steps, t, per_minute));
        t += Duration::minutes(1);
    }
    out
}

/// 30-second sleep-stage samples over `[from, to)`, labels cycling through `labels`.
fn sleep(p: &str, from: DateTime<Utc>, to: DateTime<Utc>, labels: &[&str]) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut t = from;
    let mut i = 0;
    while t < to {
        out.push(Sample::sleep_stage(pid(p), t, labels[i % labels.len()]));
        t += Duration::seconds(30);
        i += 1;
    }
    out
}

async fn enrol(db: &TestDb, p: &str, tz: Tz, enrolled_at: DateTime<Utc>) {
    let mut conn = db.pool.acquire().await.unwrap();
    participants::upsert(
        &mut conn,
        &NewParticipant {
            participant_id: pid(p),
            timezone: tz,
            provider: Some("synthetic".into()),
            enrolled_at: Some(enrolled_at),
            study_id: None,
        },
    )
    .await
    .unwrap();
}

/// Writes the batch as the loader does and returns the span it changed.
async fn write(db: &TestDb, batch: &[Sample]) -> TimeRange {
    let mut conn = db.pool.acquire().await.unwrap();
    let summary = SampleWriter::new(&db.backend)
        .write(&mut conn, batch)
        .await
        .unwrap();
    let range = summary.changed_range().unwrap();
    refresh_rollups(&mut conn, &db.backend, range)
        .await
        .unwrap();
    range
}

async fn refresh(db: &TestDb, from: DateTime<Utc>, to: DateTime<Utc>) {
    let mut conn = db.pool.acquire().await.unwrap();
    adherence::refresh(&mut conn, TimeRange::new(from, to).unwrap(), None)
        .await
        .unwrap();
}

type DayRow = (
    String,
    NaiveDate,
    i32,
    Option<f64>,
    bool,
    Option<String>,
    i32,
    Option<f64>,
);

async fn days(db: &TestDb) -> Vec<DayRow> {
    sqlx::query_as(
        "select participant_id, day, wear_minutes, steps, main_sleep_recorded, main_sleep_type,
                sleep_minutes, sleep_hr_coverage
         from participant_adherence_daily order by participant_id, day",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

fn row(
    p: &str,
    day: &str,
    wear: i32,
    steps: Option<f64>,
    sleep: Option<&str>,
    sleep_minutes: i32,
    coverage: Option<f64>,
) -> DayRow {
    (
        p.into(),
        date(day),
        wear,
        steps,
        sleep.is_some(),
        sleep.map(str::to_owned),
        sleep_minutes,
        coverage,
    )
}

/// The fixture on fixed February dates (no daylight-saving change: London is UTC, Los Angeles
/// UTC-8).
async fn seed_fixed_days(db: &TestDb) {
    let (d10, d11, d12) = (date("2026-02-10"), date("2026-02-11"), date("2026-02-12"));
    enrol(db, "LAX", Los_Angeles, local(Los_Angeles, d10, 0, 0)).await;
    enrol(db, "LON", London, local(London, d10, 0, 0)).await;
    let la = |d, h, m| local(Los_Angeles, d, h, m);
    let mut batch = Vec::new();
    // 20:00 to 02:00 local: 240 minutes on the 10th, 120 on the 11th (all on the 11th in UTC).
    batch.extend(heart_rate("LAX", la(d10, 20, 0), la(d11, 2, 0), 15));
    // 23:00 to 01:00 local, 10 a minute: 600 steps on each side of midnight.
    batch.extend(steps("LAX", la(d10, 23, 0), la(d11, 1, 0), 10.0));
    // The night ending on the 11th: awake 22:30-23:00, stages 23:00-06:00 (420 sleep minutes),
    // wake 06:00-06:30. Heart rate covers 23:00-02:00: 180 of 420.
    batch.extend(sleep("LAX", la(d10, 22, 30), la(d10, 23, 0), &["wake"]));
    batch.extend(sleep(
        "LAX",
        la(d10, 23, 0),
        la(d11, 6, 0),
        &["light", "deep", "rem"],
    ));
    batch.extend(sleep("LAX", la(d11, 6, 0), la(d11, 6, 30), &["wake"]));
    // A 40-minute afternoon nap on the 11th: a separate, shorter session, not the main sleep.
    batch.extend(sleep("LAX", la(d11, 14, 0), la(d11, 14, 40), &["asleep"]));
    // The night ending on the 12th, classic: awake 10 minutes, then asleep/restless to 05:00
    // (350 sleep minutes), no heart rate at all.
    batch.extend(sleep("LAX", la(d11, 23, 0), la(d11, 23, 10), &["awake"]));
    batch.extend(sleep(
        "LAX",
        la(d11, 23, 10),
        la(d12, 5, 0),
        &["asleep", "restless"],
    ));

    let lon = |d, h, m| local(London, d, h, m);
    // A full day with one hour off the wrist (12:00-13:00): 1,380 wear minutes.
    batch.extend(heart_rate("LON", lon(d10, 0, 0), lon(d10, 12, 0), 10));
    batch.extend(heart_rate("LON", lon(d10, 13, 0), lon(d11, 0, 0), 10));
    batch.extend(steps("LON", lon(d10, 9, 0), lon(d10, 10, 40), 5.0));
    // 06:00-15:00 on the 11th: 540 minutes, short of a valid day.
    batch.extend(heart_rate("LON", lon(d11, 6, 0), lon(d11, 15, 0), 10));
    write(db, &batch).await;
}

#[tokio::test]
async fn daily_figures_follow_each_participants_local_day() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        seed_fixed_days(&db).await;
        refresh(&db, Utc::now() - Duration::days(3650), Utc::now()).await;
        let cover = 180.0 / 420.0;
        assert_eq!(
            days(&db).await,
            vec![
                row("LAX", "2026-02-10", 240, Some(600.0), None, 0, None),
                row(
                    "LAX",
                    "2026-02-11",
                    120,
                    Some(600.0),
                    Some("stages"),
                    420,
                    Some(cover)
                ),
                row(
                    "LAX",
                    "2026-02-12",
                    0,
                    None,
                    Some("classic"),
                    350,
                    Some(0.0)
                ),
                row("LON", "2026-02-10", 1380, Some(500.0), None, 0, None),
                row("LON", "2026-02-11", 540, None, None, 0, None),
            ],
            "on {backend:?}"
        );
        let valid: Vec<(String, NaiveDate)> = sqlx::query_as(
            "select participant_id, day from participant_adherence_daily where valid_day
             order by 1, 2",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
        assert_eq!(valid, vec![("LON".to_owned(), date("2026-02-10"))]);
    }
}

#[tokio::test]
async fn refreshing_a_writes_span_recomputes_the_local_days_it_touches() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        seed_fixed_days(&db).await;
        refresh(&db, Utc::now() - Duration::days(3650), Utc::now()).await;
        let before = days(&db).await;
        // An hour of heart rate during the classic night (03:00-04:00 local on the 12th).
        let d12 = date("2026-02-12");
        let span = write(
            &db,
            &heart_rate(
                "LAX",
                local(Los_Angeles, d12, 3, 0),
                local(Los_Angeles, d12, 4, 0),
                20,
            ),
        )
        .await;
        let mut conn = db.pool.acquire().await.unwrap();
        adherence::refresh(&mut conn, span, Some(&pid("LAX")))
            .await
            .unwrap();
        // Refreshing again changes nothing.
        adherence::refresh(&mut conn, span, None).await.unwrap();
        let mut expected = before.clone();
        expected[2] = row(
            "LAX",
            "2026-02-12",
            60,
            None,
            Some("classic"),
            350,
            Some(60.0 / 350.0),
        );
        assert_eq!(days(&db).await, expected, "on {backend:?}");
    }
}

async fn summaries(db: &TestDb) -> Vec<AdherenceSummary> {
    let mut conn = db.pool.acquire().await.unwrap();
    adherence::summaries(&mut conn, &[]).await.unwrap()
}

async fn local_today(db: &TestDb, tz: Tz) -> NaiveDate {
    sqlx::query_scalar("select (now() at time zone $1)::date")
        .bind(tz.name())
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_summary_counts_recent_days_and_raises_flags_by_the_configured_thresholds() {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        let today = local_today(&db, London).await;
        let la_today = local_today(&db, Los_Angeles).await;
        let ago = |n: i64| today - Duration::days(n);
        enrol(&db, "ACT", London, local(London, ago(40), 9, 0)).await;
        enrol(&db, "GONE", Los_Angeles, Utc::now() - Duration::days(40)).await;
        enrol(&db, "NEW", London, Utc::now()).await;
        enrol(&db, "WD", London, Utc::now() - Duration::days(40)).await;
        sqlx::query("update participants set status = 'withdrawn' where participant_id = 'WD'")
            .execute(&db.pool)
            .await
            .unwrap();
        let mut batch = Vec::new();
        // ACT: valid days (660 wear minutes) 1 to 5 days ago, nothing 6 and 7 days ago; a
        // short day 20 days ago; main sleeps ending 1 to 3 days ago, fully covered by HR.
        for n in 1..=5 {
            batch.extend(heart_rate(
                "ACT",
                local(London, ago(n), 8, 0),
                local(London, ago(n), 19, 0),
                30,
            ));
        }
        batch.extend(heart_rate(
            "ACT",
            local(London, ago(20), 8, 0),
            local(London, ago(20), 9, 0),
            30,
        ));
        for n in 1..=3 {
            batch.extend(heart_rate(
                "ACT",
                local(London, ago(n), 1, 0),
                local(London, ago(n), 6, 0),
                30,
            ));
            batch.extend(sleep(
                "ACT",
                local(London, ago(n), 1, 0),
                local(London, ago(n), 6, 0),
                &["light", "deep"],
            ));
        }
        // GONE: one valid day ten local days ago, nothing since.
        let gone_day = la_today - Duration::days(10);
        batch.extend(heart_rate(
            "GONE",
            local(Los_Angeles, gone_day, 7, 0),
            local(Los_Angeles, gone_day, 19, 0),
            60,
        ));
        write(&db, &batch).await;
        refresh(
            &db,
            Utc::now() - Duration::days(60),
            Utc::now() + Duration::days(1),
        )
        .await;

        let got = summaries(&db).await;
        let by = |p: &str| got.iter().find(|s| s.participant_id == p).unwrap().clone();
        let act = by("ACT");
        assert_eq!(act.local_today, today);
        assert_eq!((act.valid_days_7d, act.valid_days_30d), (5, 5));
        assert_eq!(act.nights_with_main_sleep_7d, 3);
        assert_eq!(act.sleep_hr_coverage_7d, Some(1.0));
        assert_eq!(
            (act.last_data_day, act.days_since_last_data),
            (Some(ago(1)), Some(1))
        );
        assert_eq!(
            (act.flag_inactivity, act.flag_low_wear, act.flag_poor_sleep),
            (false, false, true)
        );
        let gone = by("GONE");
        assert_eq!((gone.valid_days_7d, gone.valid_days_30d), (0, 1));
        assert_eq!(
            (gone.last_data_day, gone.days_since_last_data),
            (Some(gone_day), Some(10))
        );
        assert_eq!(
            (
                gone.flag_inactivity,
                gone.flag_low_wear,
                gone.flag_poor_sleep
            ),
            (true, true, true)
        );
        let new = by("NEW");
        assert_eq!((new.last_data_day, new.days_since_last_data), (None, None));
        assert_eq!((new.flag_inactivity, new.flag_low_wear), (false, true));
        let wd = by("WD");
        assert_eq!(
            (wd.flag_inactivity, wd.flag_low_wear, wd.flag_poor_sleep),
            (false, false, false)
        );

        // Thresholds are one row of settings.
        sqlx::query(
            "update adherence_settings set inactivity_days = 11, poor_sleep_min_nights_7d = 3,
                                          valid_day_min_wear_minutes = 700",
        )
        .execute(&db.pool)
        .await
        .unwrap();
        let got = summaries(&db).await;
        let by = |p: &str| got.iter().find(|s| s.participant_id == p).unwrap().clone();
        let act = by("ACT");
        assert_eq!(
            (act.valid_days_7d, act.flag_low_wear, act.flag_poor_sleep),
            (3, true, false)
        );
        let gone = by("GONE");
        assert_eq!(
            (gone.valid_days_30d, gone.flag_inactivity),
            (1, false),
            "on {backend:?}"
        );
    }
}

/// The main sleep's asleep minutes with heart rate, straight from the table.
async fn sleep_hr(db: &TestDb, p: &str, day: &str) -> (Option<String>, i32, i32) {
    sqlx::query_as(
        "select main_sleep_type, sleep_minutes, sleep_hr_minutes from adherence_days
         where participant_id = $1 and day = $2",
    )
    .bind(p)
    .bind(date(day))
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn sleep_coverage_counts_the_main_sleeps_asleep_minutes_with_heart_rate_whatever_span_is_refreshed()
 {
    for backend in backends().await {
        let db = TestDb::new(backend).await;
        let (d10, d11) = (date("2026-02-10"), date("2026-02-11"));
        enrol(&db, "NIGHT", London, local(London, d10, 0, 0)).await;
        let at = |d, h, m| local(London, d, h, m);
        let mut batch = Vec::new();
        // The night ending on the 11th: wake 22:40-23:00, stages 23:00-03:00 (240 sleep
        // minutes), awake in bed 03:00-03:20, stages 03:20-06:00 (160), wake 06:00-06:10.
        batch.extend(sleep("NIGHT", at(d10, 22, 40), at(d10, 23, 0), &["wake"]));
        batch.extend(sleep(
            "NIGHT",
            at(d10, 23, 0),
            at(d11, 3, 0),
            &["deep", "rem"],
        ));
        batch.extend(sleep("NIGHT", at(d11, 3, 0), at(d11, 3, 20), &["wake"]));
        batch.extend(sleep("NIGHT", at(d11, 3, 20), at(d11, 6, 0), &["light"]));
        batch.extend(sleep("NIGHT", at(d11, 6, 0), at(d11, 6, 10), &["wake"]));
        // A nap on the 11th with heart rate throughout: its own session, not the main sleep.
        batch.extend(sleep("NIGHT", at(d11, 14, 0), at(d11, 14, 40), &["asleep"]));
        batch.extend(heart_rate("NIGHT", at(d11, 14, 0), at(d11, 14, 40), 15));
        // Heart rate: 22:30-23:30 covers 30 sleep minutes, all before local midnight (the
        // minutes awake before 23:00 do not count); 01:00-02:00 covers 60; 02:50-03:30 covers
        // 10 + 10 around the 20 minutes awake; one sample every two minutes over 05:00-05:30
        // covers 15; 06:00-07:00 is after the sleep. 125 of 400.
        batch.extend(heart_rate("NIGHT", at(d10, 22, 30), at(d10, 23, 30), 15));
        batch.extend(heart_rate("NIGHT", at(d11, 1, 0), at(d11, 2, 0), 20));
        batch.extend(heart_rate("NIGHT", at(d11, 2, 50), at(d11, 3, 30), 20));
        batch.extend(heart_rate("NIGHT", at(d11, 5, 0), at(d11, 5, 30), 120));
        batch.extend(heart_rate("NIGHT", at(d11, 6, 0), at(d11, 7, 0), 30));
        write(&db, &batch).await;
        let expected = (Some("stages".to_owned()), 400, 125);

        refresh(&db, at(d10, 0, 0), at(d11, 23, 0)).await;
        assert_eq!(
            sleep_hr(&db, "NIGHT", "2026-02-11").await,
            expected,
            "on {backend:?}"
        );

        // A span that starts after midnight still sees the whole night, heart rate included.
        sqlx::query("delete from adherence_days")
            .execute(&db.pool)
            .await
            .unwrap();
        let mut conn = db.pool.acquire().await.unwrap();
        let span = TimeRange::new(at(d11, 5, 0), at(d11, 5, 1)).unwrap();
        adherence::refresh(&mut conn, span, Some(&pid("NIGHT")))
            .await
            .unwrap();
        assert_eq!(
            sleep_hr(&db, "NIGHT", "2026-02-11").await,
            expected,
            "on {backend:?}"
        );
    }
}
