//! The shape of a synthetic participant and of each of their days: who they are (resting heart
//! rate, stride, weight, how often the device syncs), when they sleep, when the device is off
//! the wrist and when they are active. Every draw comes from a random stream keyed by the
//! cohort seed, the participant, the day and the purpose, so any day can be generated alone,
//! in any order, and always comes out the same.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A deterministic random stream for `(seed, participant, day, purpose)`. The mixing is our
/// own (FNV-1a, then splitmix64), not `std`'s hasher, so the data stays the same across Rust
/// versions.
pub fn stream(seed: u64, participant: &str, day: i64, purpose: &str) -> ChaCha8Rng {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in participant
        .bytes()
        .chain([0xff])
        .chain(purpose.bytes())
        .chain(day.to_le_bytes())
        .chain(seed.to_le_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ChaCha8Rng::seed_from_u64(splitmix64(h))
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A standard normal draw (Box–Muller).
pub fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The instant a participant's local day starts (the first valid local time at or after
/// midnight, for zones that skip midnight on a daylight-saving day).
pub fn local_day_start(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
    (0..=3)
        .find_map(|h| {
            tz.from_local_datetime(&(midnight + Duration::hours(h)))
                .earliest()
        })
        .expect("a valid local time within three hours of midnight")
        .with_timezone(&Utc)
}

/// Days since the common era, as the day key of the random streams.
pub fn day_key(day: NaiveDate) -> i64 {
    i64::from(day.num_days_from_ce())
}

/// Who a synthetic participant is.
#[derive(Debug, Clone)]
pub struct Profile {
    pub resting_hr: f64,
    pub max_hr: f64,
    pub stride_m: f64,
    /// Basal energy expenditure per minute.
    pub bmr_kcal_min: f64,
    pub kcal_per_step: f64,
    /// Scales how many and how intense the activity bouts are.
    pub activity: f64,
    pub spo2: f64,
    pub hrv_ms: f64,
    pub breathing_rate: f64,
    /// How often the device syncs when the phone is nearby.
    pub sync_every_min: i64,
    /// How far behind "now" the device's last sync is: minutes for most, a day or more for a
    /// late syncer.
    pub sync_lag_min: i64,
}

impl Profile {
    /// The participant's profile for a cohort seed.
    pub fn new(seed: u64, participant: &str) -> Self {
        let mut r = stream(seed, participant, 0, "profile");
        let age: f64 = r.gen_range(22.0..75.0);
        let weight: f64 = r.gen_range(52.0..105.0);
        let late_syncer = r.gen_bool(0.15);
        Profile {
            resting_hr: r.gen_range(52.0..74.0),
            max_hr: 208.0 - 0.7 * age,
            stride_m: r.gen_range(0.62..0.82),
            bmr_kcal_min: weight * 0.0155,
            kcal_per_step: 0.04 * weight / 70.0,
            activity: r.gen_range(0.5..1.6),
            spo2: r.gen_range(94.5..97.5),
            hrv_ms: r.gen_range(20.0..75.0),
            breathing_rate: r.gen_range(12.0..17.0),
            sync_every_min: r.gen_range(15..180),
            sync_lag_min: if late_syncer {
                r.gen_range(20 * 60..60 * 60)
            } else {
                r.gen_range(0..120)
            },
        }
    }
}

/// One night's sleep, the one ending on the morning of its day (Fitbit's `dateOfSleep`).
/// Times are seconds from the start of that local day; `bed` is negative (the evening before).
#[derive(Debug, Clone, Copy)]
pub struct Night {
    /// Whether the device was worn that night (else no sleep data).
    pub worn: bool,
    pub bed: i64,
    pub wake: i64,
}

impl Night {
    pub fn new(seed: u64, participant: &str, day: NaiveDate) -> Self {
        let mut r = stream(seed, participant, day_key(day), "night");
        Night {
            worn: r.gen_bool(0.9),
            bed: -r.gen_range(0..150) * 60,
            wake: r.gen_range(6 * 60..8 * 60 + 30) * 60,
        }
    }
}

/// What the wearer is doing in a minute of the day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum State {
    /// Device off the wrist (charging, shower, forgotten): no data at all.
    Off,
    Asleep,
    Awake,
    /// In an activity bout of this intensity (0..1 of heart-rate reserve).
    Active(f64),
}

/// A local day, minute by minute from its start (23, 24 or 25 hours on daylight-saving days).
#[derive(Debug, Clone)]
pub struct DayPlan {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub minutes: Vec<State>,
}

impl DayPlan {
    pub fn new(seed: u64, participant: &str, tz: Tz, day: NaiveDate) -> Self {
        let start = local_day_start(day, tz);
        let next = day.succ_opt().expect("date in range");
        let end = local_day_start(next, tz);
        let len = ((end - start).num_minutes()).max(0) as usize;
        let last_night = Night::new(seed, participant, day);
        let tonight = Night::new(seed, participant, next);
        let mut r = stream(seed, participant, day_key(day), "day");
        let worn_today = r.gen_bool(0.95);
        let wake_min = (last_night.wake / 60) as usize;
        let bed_min = (len as i64 + tonight.bed / 60).max(0) as usize;
        let mut minutes = vec![State::Off; len];
        for (m, state) in minutes.iter_mut().enumerate() {
            *state = if m < wake_min {
                if last_night.worn {
                    State::Asleep
                } else {
                    State::Off
                }
            } else if m >= bed_min {
                if tonight.worn {
                    State::Asleep
                } else {
                    State::Off
                }
            } else if worn_today {
                State::Awake
            } else {
                State::Off
            };
        }
        if worn_today && bed_min > wake_min + 180 {
            // Off the wrist once or twice: shower, charging.
            for _ in 0..r.gen_range(0..=2) {
                let from = r.gen_range(wake_min + 30..bed_min - 60);
                let to = (from + r.gen_range(20..150)).min(bed_min);
                minutes[from..to].fill(State::Off);
            }
            // Activity bouts: walks, commutes, workouts.
            let profile = Profile::new(seed, participant);
            let bouts = (r.gen_range(2.0..7.0) * profile.activity).round() as usize;
            for _ in 0..bouts {
                let from = r.gen_range(wake_min..bed_min - 50);
                let to = (from + r.gen_range(5..50)).min(bed_min);
                let intensity = r.gen_range(0.25..0.85);
                for s in &mut minutes[from..to] {
                    if *s == State::Awake {
                        *s = State::Active(intensity);
                    }
                }
            }
        }
        DayPlan {
            start,
            end,
            minutes,
        }
    }

    /// The state at `t` seconds from the day's start.
    pub fn state_at(&self, t: i64) -> State {
        self.minutes
            .get((t / 60) as usize)
            .copied()
            .unwrap_or(State::Off)
    }
}
