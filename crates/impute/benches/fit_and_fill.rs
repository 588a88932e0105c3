//! Imputation benchmark: fit-and-fill time per participant-day (1,440 one-minute heart-rate
//! points with gaps) next to statsmodels on the same series, and the error on held-out
//! points of the ARIMA smoother against linear interpolation and forward fill.
//!
//! Run with `cargo bench -p wearhouse-impute --bench fit_and_fill`. statsmodels is timed by
//! `scripts/statsmodels/bench.py` under `$WEARHOUSE_PYTHON` (default `python3`) when that
//! interpreter has statsmodels; otherwise the run says so and reports wearhouse alone.
//! `WEARHOUSE_BENCH_DAYS` sets the number of simulated days (default 6).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use wearhouse_core::{ImputationStrategy, Metric};
use wearhouse_impute::arima::{self, ArimaOrder, ArimaParams, FitOptions, OrderGrid};
use wearhouse_impute::fill::{FillConfig, fill, fill_arima};

/// SplitMix64: a tiny deterministic generator, so every run sees the same days.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// A day of minute heart rate: lower at night, a few activity bouts that rise and decay,
/// autocorrelated noise; short dropouts and one non-wear block (charging) as gaps.
fn simulate_day(seed: u64) -> (Vec<f64>, Vec<Option<f64>>) {
    let mut rng = Rng(seed);
    let mut truth = Vec::with_capacity(1440);
    let mut noise = 0.0;
    let mut effort = 0.0;
    for t in 0..1440 {
        let hour = t as f64 / 60.0;
        let baseline = if !(7.0..23.0).contains(&hour) {
            56.0
        } else {
            72.0
        };
        if (7.0..22.0).contains(&hour) && rng.uniform() < 0.006 {
            effort += 25.0 + 35.0 * rng.uniform();
        }
        effort *= 0.96;
        noise = 0.85 * noise + 1.8 * rng.normal();
        truth.push(baseline + effort + noise);
    }
    let mut observed: Vec<Option<f64>> = truth
        .iter()
        .map(|v| Some((v * 10.0).round() / 10.0))
        .collect();
    for t in 0..1440 {
        if rng.uniform() < 0.02 {
            let len = 1 + (rng.uniform() * 4.0) as usize;
            for x in observed.iter_mut().skip(t).take(len) {
                *x = None;
            }
        }
    }
    let charge = 600 + (rng.uniform() * 300.0) as usize;
    for x in observed.iter_mut().skip(charge).take(90) {
        *x = None;
    }
    (truth, observed)
}

/// Hides observed points in runs of `len` (about 5% of the day); returns the masked series
/// and the hidden indices.
fn hold_out(observed: &[Option<f64>], len: usize, seed: u64) -> (Vec<Option<f64>>, Vec<usize>) {
    let mut rng = Rng(seed);
    let mut masked = observed.to_vec();
    let mut hidden = Vec::new();
    let runs = (72 / len).max(3);
    for _ in 0..runs {
        let start = 30 + (rng.uniform() * (1440 - 60 - len) as f64) as usize;
        let run = start..start + len;
        if run
            .clone()
            .all(|t| observed[t].is_some() && masked[t].is_some())
            && observed[start - 1].is_some()
            && observed[start + len].is_some()
        {
            for t in run {
                masked[t] = None;
                hidden.push(t);
            }
        }
    }
    (masked, hidden)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn as_nan(v: &[Option<f64>]) -> Vec<f64> {
    v.iter().map(|x| x.unwrap_or(f64::NAN)).collect()
}

struct Python {
    exe: String,
    script: PathBuf,
}

fn find_python() -> Result<Python, String> {
    let exe = std::env::var("WEARHOUSE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/statsmodels/bench.py");
    let ok = Command::new(&exe)
        .args(["-c", "import statsmodels"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        Ok(Python { exe, script })
    } else {
        Err(format!(
            "statsmodels is not importable by `{exe}` (set WEARHOUSE_PYTHON; see scripts/statsmodels/requirements.txt): statsmodels not measured"
        ))
    }
}

fn run_statsmodels(
    py: &Python,
    series: &[Vec<Option<f64>>],
    order: Option<ArimaOrder>,
) -> serde_json::Value {
    let grid = OrderGrid::default();
    let request = serde_json::json!({
        "series": series,
        "order": order.map(|o| [o.p, o.d, o.q]),
        "grid": [grid.max_p, grid.max_d, grid.max_q],
    });
    let mut child = Command::new(&py.exe)
        .arg(&py.script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("python bench");
    assert!(out.status.success(), "statsmodels bench failed");
    serde_json::from_slice(&out.stdout).expect("statsmodels bench output")
}

fn main() {
    let days: u64 = std::env::var("WEARHOUSE_BENCH_DAYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let sims: Vec<(Vec<f64>, Vec<Option<f64>>)> =
        (0..days).map(|d| simulate_day(1000 + d)).collect();
    let observed: Vec<Vec<Option<f64>>> = sims.iter().map(|s| s.1.clone()).collect();
    let python = find_python();
    let bounds = (
        Metric::HeartRate.info().min_value,
        Metric::HeartRate.info().max_value,
    );
    let missing: usize = observed
        .iter()
        .map(|s| s.iter().filter(|v| v.is_none()).count())
        .sum();
    println!(
        "# {days} simulated participant-days of 1,440 one-minute heart-rate points, {:.1}% missing",
        100.0 * missing as f64 / (1440 * days) as f64
    );

    println!("\n## Fit and fill time per participant-day (median over days)\n");
    println!(
        "| model | wearhouse | likelihood evaluations | statsmodels | ratio | same order chosen | log-likelihood, wearhouse − statsmodels (smallest over days where the order agrees) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let fixed = ArimaOrder::new(2, 1, 1).unwrap();
    for (label, order) in [
        ("ARIMA(2,1,1) fixed", Some(fixed)),
        ("AIC over p≤2, d≤1, q≤2 (18 fits)", None),
    ] {
        let config = FillConfig {
            max_gap: 60,
            order,
            grid: OrderGrid::default(),
            fit: FitOptions::default(),
        };
        let mut secs = Vec::new();
        let mut models = Vec::new();
        for s in &observed {
            let start = Instant::now();
            let f = fill_arima(s, bounds, &config).expect("fit");
            secs.push(start.elapsed().as_secs_f64());
            models.push(f.model.expect("model"));
        }
        let ours = median(secs);
        let evals = median(models.iter().map(|m| m.evaluations as f64).collect());
        match &python {
            Ok(py) => {
                let sm = run_statsmodels(py, &observed, order);
                let sm_secs: Vec<f64> = sm["seconds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                let theirs = median(sm_secs);
                let mut same = 0;
                let mut worst = f64::INFINITY;
                for (k, m) in models.iter().enumerate() {
                    let o = &sm["orders"][k];
                    if o == &serde_json::json!([m.order.p, m.order.d, m.order.q]) {
                        same += 1;
                        worst = worst.min(m.loglike - sm["llf"][k].as_f64().unwrap());
                    }
                }
                println!(
                    "| {label} | {:.1} ms | {evals:.0} | {:.1} ms (statsmodels {}) | {:.0}× | {same} of {} | {worst:+.2e} |",
                    ours * 1e3,
                    theirs * 1e3,
                    sm["statsmodels"].as_str().unwrap_or("?"),
                    theirs / ours,
                    models.len(),
                );
            }
            Err(_) => println!(
                "| {label} | {:.1} ms | {evals:.0} | not measured | | | |",
                ours * 1e3
            ),
        }
    }
    if let Err(why) = &python {
        println!("\n{why}");
    }
    // One exact log-likelihood evaluation, the unit the optimiser spends.
    let y = as_nan(&observed[0]);
    let params = ArimaParams {
        trend: 0.0,
        ar: vec![0.5, -0.1],
        ma: vec![-0.3],
        sigma2: 4.0,
    };
    let reps = 2000;
    let start = Instant::now();
    let mut acc = 0.0;
    for _ in 0..reps {
        acc += arima::loglike(&y, fixed, &params).expect("loglike");
    }
    let per = start.elapsed().as_secs_f64() / reps as f64;
    println!(
        "\nOne exact log-likelihood evaluation of ARIMA(2,1,1) on a day: {:.1} µs ({:.0} ns per point; checksum {:.3}).",
        per * 1e6,
        per * 1e9 / 1440.0,
        acc / reps as f64
    );

    println!("\n## Held-out error (observed points hidden in runs, then filled; bpm)\n");
    println!(
        "| hidden run length | points | ARIMA smoother MAE / RMSE | linear MAE / RMSE | forward fill MAE / RMSE |"
    );
    println!("|---|---|---|---|---|");
    for len in [1usize, 5, 15, 30, 60] {
        let mut err: [Vec<f64>; 3] = Default::default();
        for (d, (_, obs)) in sims.iter().enumerate() {
            let (masked, hidden) = hold_out(obs, len, 77 + d as u64 * 31 + len as u64);
            let config = FillConfig {
                max_gap: 60,
                ..FillConfig::default()
            };
            let arima = fill_arima(&masked, bounds, &config).expect("fit");
            let linear = fill(ImputationStrategy::Linear, bounds, &masked, &config).unwrap();
            let ffill = fill(
                ImputationStrategy::ForwardBackFill,
                bounds,
                &masked,
                &config,
            )
            .unwrap();
            let truth = as_nan(obs);
            for &t in &hidden {
                for (k, f) in [&arima, &linear, &ffill].into_iter().enumerate() {
                    err[k].push(f.values[t].expect("hidden runs are filled") - truth[t]);
                }
            }
        }
        let stat = |e: &Vec<f64>| {
            let mae = e.iter().map(|x| x.abs()).sum::<f64>() / e.len() as f64;
            let rmse = (e.iter().map(|x| x * x).sum::<f64>() / e.len() as f64).sqrt();
            format!("{mae:.2} / {rmse:.2}")
        };
        println!(
            "| {len} | {} | {} | {} | {} |",
            err[0].len(),
            stat(&err[0]),
            stat(&err[1]),
            stat(&err[2])
        );
    }
}
