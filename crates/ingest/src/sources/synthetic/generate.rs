//! Turns a [`DayPlan`] into samples, one metric at a time. Each metric has its own random
//! stream, so fetching one metric never needs another's samples; calories and distance are
//! computed from the same per-minute steps the `steps` metric reports, so they agree.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use rand::Rng;
use wearhouse_core::{Metric, ParticipantId, Sample};

use super::plan::{DayPlan, Night, Profile, State, day_key, local_day_start, normal, stream};

/// Heart rate sampling: second-level (every 5–15 s) during activity, sparser at rest and in
/// sleep, as wrist devices back off when the wearer is still. See docs/benchmarks.md for why
/// these densities.
const HR_ACTIVE_SECS: (i64, i64) = (5, 16);
const HR_AWAKE_SECS: (i64, i64) = (40, 100);
const HR_ASLEEP_SECS: (i64, i64) = (60, 150);

/// One participant's synthetic data for one local day.
pub struct Day<'a> {
    pub seed: u64,
    pub participant: &'a ParticipantId,
    pub tz: Tz,
    pub day: NaiveDate,
    pub profile: &'a Profile,
}

impl Day<'_> {
    fn rng(&self, purpose: &str) -> rand_chacha::ChaCha8Rng {
        stream(
            self.seed,
            self.participant.as_str(),
            day_key(self.day),
            purpose,
        )
    }

    fn plan(&self) -> DayPlan {
        DayPlan::new(self.seed, self.participant.as_str(), self.tz, self.day)
    }

    /// The samples of `metric`, in time order.
    pub fn samples(&self, metric: Metric) -> Vec<Sample> {
        match metric {
            Metric::HeartRate => self.heart_rate(),
            Metric::Steps | Metric::Calories | Metric::Distance => self.activity(metric),
            Metric::SleepStage => self.sleep_stages(),
            Metric::Spo2 | Metric::HrvRmssd => self.night_series(metric),
            Metric::BreathingRate | Metric::SkinTempDelta | Metric::RestingHeartRate => {
                self.daily(metric)
            }
            Metric::Floors | Metric::ActiveZoneMinutes => Vec::new(),
        }
    }

    fn heart_rate(&self) -> Vec<Sample> {
        let plan = self.plan();
        let p = self.profile;
        let mut r = self.rng("heart_rate");
        let len = (plan.end - plan.start).num_seconds();
        let mut out = Vec::new();
        let mut noise = 0.0;
        let mut exertion = 0.0_f64;
        let mut t = r.gen_range(0..30);
        while t < len {
            let state = plan.state_at(t);
            let (lo, hi) = match state {
                State::Off => {
                    t = (t / 60 + 1) * 60 + r.gen_range(0..20);
                    continue;
                }
                State::Active(_) => HR_ACTIVE_SECS,
                State::Awake => HR_AWAKE_SECS,
                State::Asleep => HR_ASLEEP_SECS,
            };
            // Circadian baseline: lowest before dawn, highest in the late afternoon.
            let hour = t as f64 / 3600.0;
            let circadian = 4.0 * (std::f64::consts::TAU * (hour - 10.0) / 24.0).sin();
            let target = match state {
                State::Asleep => p.resting_hr - 4.0,
                State::Awake => p.resting_hr + 12.0,
                State::Active(i) => p.resting_hr + i * (p.max_hr - p.resting_hr),
                State::Off => unreachable!("skipped above"),
            };
            // The heart rate follows the effort with a lag rather than jumping.
            exertion += (target - exertion) * if exertion == 0.0 { 1.0 } else { 0.35 };
            noise = 0.8 * noise + 2.0 * normal(&mut r);
            let bpm = (exertion + circadian + noise).clamp(35.0, p.max_hr).round();
            out.push(self.sample(Metric::HeartRate, plan.start + Duration::seconds(t), bpm));
            t += r.gen_range(lo..hi);
        }
        out
    }

    /// Steps per minute in bouts; calories and distance from the same steps.
    fn activity(&self, metric: Metric) -> Vec<Sample> {
        let plan = self.plan();
        let p = self.profile;
        let mut r = self.rng("steps");
        let mut out = Vec::new();
        for (m, state) in plan.minutes.iter().enumerate() {
            let steps: f64 = match *state {
                State::Active(i) => (r.gen_range(70.0..105.0) + 40.0 * i).round(),
                State::Awake if r.gen_bool(0.18) => r.gen_range(4.0..45.0_f64).round(),
                _ => 0.0,
            };
            let at = plan.start + Duration::minutes(m as i64);
            let value = match metric {
                Metric::Steps if steps > 0.0 => steps,
                Metric::Distance if steps > 0.0 => (steps * p.stride_m * 10.0).round() / 10.0,
                // Energy is spent while the device is worn whether or not the wearer walks.
                Metric::Calories if matches!(state, State::Awake | State::Active(_)) => {
                    let effort = match *state {
                        State::Active(i) => 3.0 * i * p.bmr_kcal_min,
                        _ => 0.0,
                    };
                    ((p.bmr_kcal_min + steps * p.kcal_per_step + effort) * 100.0).round() / 100.0
                }
                _ => continue,
            };
            out.push(self.sample(metric, at, value));
        }
        out
    }

    /// 30-second sleep stages for the night that ends this morning, in ~90-minute cycles: deep
    /// sleep early in the night, REM later, brief awakenings throughout.
    fn sleep_stages(&self) -> Vec<Sample> {
        let night = Night::new(self.seed, self.participant.as_str(), self.day);
        if !night.worn {
            return Vec::new();
        }
        let start = local_day_start(self.day, self.tz);
        let mut r = self.rng("sleep");
        let epochs = (night.wake - night.bed) / 30;
        let mut out = Vec::with_capacity(epochs as usize);
        let mut awake_left = 0;
        for e in 0..epochs {
            let into_night = e as f64 / epochs as f64;
            let cycle_pos = (e % 180) as f64 / 180.0;
            let label = if awake_left > 0 || e < 4 {
                awake_left -= 1;
                "wake"
            } else if r.gen_bool(0.006) {
                awake_left = r.gen_range(1..8);
                "wake"
            } else if cycle_pos < 0.35 {
                "light"
            } else if cycle_pos < 0.35 + 0.3 * (1.0 - into_night) {
                "deep"
            } else if cycle_pos > 0.95 - 0.35 * into_night {
                "rem"
            } else {
                "light"
            };
            let at = start + Duration::seconds(night.bed + e * 30);
            out.push(Sample::sleep_stage(self.participant.clone(), at, label));
        }
        out
    }

    /// SpO2 each minute and HRV (RMSSD) each 5 minutes during the night ending this morning.
    fn night_series(&self, metric: Metric) -> Vec<Sample> {
        let night = Night::new(self.seed, self.participant.as_str(), self.day);
        if !night.worn {
            return Vec::new();
        }
        let p = self.profile;
        let start = local_day_start(self.day, self.tz);
        let mut r = self.rng(metric.name());
        let step = if metric == Metric::Spo2 { 60 } else { 300 };
        let mut out = Vec::new();
        let mut drift = 0.0;
        let mut t = night.bed - night.bed.rem_euclid(step) + step;
        while t < night.wake {
            drift = 0.9 * drift + normal(&mut r);
            let value = match metric {
                Metric::Spo2 => (p.spo2 + 0.6 * drift).clamp(85.0, 100.0),
                _ => (p.hrv_ms * (1.0 + 0.08 * drift)).clamp(5.0, 200.0),
            };
            let value = (value * 10.0).round() / 10.0;
            out.push(self.sample(metric, start + Duration::seconds(t), value));
            t += step;
        }
        out
    }

    /// One value per local day, stamped at the day's start: nightly breathing rate and skin
    /// temperature (when the night was worn), resting heart rate (when the day was).
    fn daily(&self, metric: Metric) -> Vec<Sample> {
        let night = Night::new(self.seed, self.participant.as_str(), self.day);
        let plan_worn = || self.plan().minutes.contains(&State::Awake);
        let p = self.profile;
        let mut r = self.rng(metric.name());
        let value = match metric {
            Metric::BreathingRate if night.worn => p.breathing_rate + 0.6 * normal(&mut r),
            Metric::SkinTempDelta if night.worn => 0.35 * normal(&mut r),
            Metric::RestingHeartRate if plan_worn() => p.resting_hr + 1.5 * normal(&mut r),
            _ => return Vec::new(),
        };
        let value = (value * 10.0).round() / 10.0;
        let at = local_day_start(self.day, self.tz);
        vec![self.sample(metric, at, value)]
    }

    fn sample(&self, metric: Metric, at: DateTime<Utc>, value: f64) -> Sample {
        Sample::numeric(self.participant.clone(), metric, at, value)
    }
}

/// When a day's value of `metric` becomes known to the provider: the end of the night for
/// nightly values, midday for resting heart rate, the sample's own time otherwise. A sample
/// is delivered only when the device synced after this.
pub fn known_at(
    metric: Metric,
    sample: &Sample,
    day_start: DateTime<Utc>,
    night: Night,
) -> DateTime<Utc> {
    match metric {
        Metric::BreathingRate
        | Metric::SkinTempDelta
        | Metric::SleepStage
        | Metric::Spo2
        | Metric::HrvRmssd => day_start + Duration::seconds(night.wake),
        Metric::RestingHeartRate => day_start + Duration::hours(12),
        _ => sample.timestamp,
    }
}
