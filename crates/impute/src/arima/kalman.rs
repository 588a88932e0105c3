//! The Kalman filter (exact Gaussian log-likelihood, skipping missing observations) and the
//! fixed-interval smoother (Durbin–Koopman backward recursions) for a [`StateSpace`].
//!
//! Missing observations are `NaN`: the filter only predicts through them, so the likelihood
//! is the exact likelihood of the observed values. Per-step work uses buffers sized once per
//! call; nothing allocates inside the time loop.

use super::statespace::StateSpace;

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// Buffers for [`loglike`], reusable across calls with the same state dimension.
#[derive(Debug, Default, Clone)]
pub struct Workspace {
    a: Vec<f64>,
    p: Vec<f64>,
    pz: Vec<f64>,
    tmp: Vec<f64>,
    prev: Vec<f64>,
}

impl Workspace {
    fn reset(&mut self, m: usize) {
        self.a.clear();
        self.a.resize(m, 0.0);
        self.p.resize(m * m, 0.0);
        self.pz.resize(m, 0.0);
        self.tmp.resize(m * m, 0.0);
        self.prev.resize(m * m, 0.0);
    }
}

/// Updates `a`, `p` with observation `y` (already net of the intercept). Returns the
/// prediction error, its variance and leaves `P Zᵀ` in `pz`.
#[inline]
fn update(ss: &StateSpace, y: f64, a: &mut [f64], p: &mut [f64], pz: &mut [f64]) -> (f64, f64) {
    let m = ss.m;
    let z = &ss.design;
    let mut f = 0.0;
    let mut za = 0.0;
    for i in 0..m {
        let mut s = 0.0;
        for j in 0..m {
            s += p[i * m + j] * z[j];
        }
        pz[i] = s;
        f += z[i] * s;
        za += z[i] * a[i];
    }
    let v = y - za;
    let gain = v / f;
    for i in 0..m {
        a[i] += pz[i] * gain;
    }
    for i in 0..m {
        let pi = pz[i] / f;
        for j in 0..m {
            p[i * m + j] -= pi * pz[j];
        }
    }
    (v, f)
}

/// `a ← T a`, `P ← T P Tᵀ + σ² R Rᵀ` (symmetric by construction), through the nonzeros
/// of T.
#[inline]
fn predict(ss: &StateSpace, a: &mut [f64], p: &mut [f64], tmp: &mut [f64]) {
    predict_mean(ss, a, tmp);
    let m = ss.m;
    // tmp ← T P
    tmp.fill(0.0);
    for &(i, k, val) in &ss.transition_nz {
        for j in 0..m {
            tmp[i * m + j] += val * p[k * m + j];
        }
    }
    // P ← tmp Tᵀ + σ² R Rᵀ, i.e. P[i][j] = Σ_k tmp[i][k] T[j][k]
    let r = &ss.selection;
    for i in 0..m {
        for j in 0..m {
            p[i * m + j] = ss.sigma2 * r[i] * r[j];
        }
    }
    for &(j, k, val) in &ss.transition_nz {
        for i in 0..m {
            p[i * m + j] += val * tmp[i * m + k];
        }
    }
    // Symmetrise away rounding, as statsmodels does.
    for i in 0..m {
        for j in 0..i {
            let s = 0.5 * (p[i * m + j] + p[j * m + i]);
            p[i * m + j] = s;
            p[j * m + i] = s;
        }
    }
}

/// `a ← T a`, with `scratch` (length ≥ m) as work space.
#[inline]
fn predict_mean(ss: &StateSpace, a: &mut [f64], scratch: &mut [f64]) {
    let m = ss.m;
    scratch[..m].fill(0.0);
    for &(i, k, val) in &ss.transition_nz {
        scratch[i] += val * a[k];
    }
    a.copy_from_slice(&scratch[..m]);
}

/// Relative change in the predicted covariance below which the filter is taken to have
/// reached its steady state. Far below what moves the log-likelihood at 1e-9 relative.
const STEADY_TOL: f64 = 1e-11;

/// Exact Gaussian log-likelihood of `y` (NaN = missing) under `ss`, statsmodels' definition:
/// the sum over observed periods after the burn-in of `-½(ln 2π + ln F_t + v_t²/F_t)`.
/// Returns `NaN` if a prediction variance is not positive.
///
/// Like statsmodels, once the predicted covariance stops changing through a run of
/// observations it is frozen (the steady state), and only the mean is propagated until the
/// next missing value, which restarts the covariance recursion.
pub fn loglike(ss: &StateSpace, y: &[f64], ws: &mut Workspace) -> f64 {
    let m = ss.m;
    ws.reset(m);
    ws.p.copy_from_slice(&ss.initial_cov);
    let burn = ss.burn();
    let mut ll = 0.0;
    let mut steady: Option<f64> = None;
    let z = &ss.design;
    for (t, &yt) in y.iter().enumerate() {
        if !yt.is_finite() {
            steady = None;
            predict(ss, &mut ws.a, &mut ws.p, &mut ws.tmp);
            continue;
        }
        let yt = yt - ss.obs_intercept(t);
        let f = match steady {
            Some(f) => {
                let za: f64 = z.iter().zip(&ws.a).map(|(zi, ai)| zi * ai).sum();
                let gain = (yt - za) / f;
                for (ai, pzi) in ws.a.iter_mut().zip(&ws.pz) {
                    *ai += pzi * gain;
                }
                if t >= burn {
                    ll -= 0.5 * (LN_2PI + f.ln() + (yt - za) * (yt - za) / f);
                }
                predict_mean(ss, &mut ws.a, &mut ws.tmp);
                continue;
            }
            None => {
                ws.prev.copy_from_slice(&ws.p);
                let (v, f) = update(ss, yt, &mut ws.a, &mut ws.p, &mut ws.pz);
                if f.is_nan() || f <= 0.0 {
                    return f64::NAN;
                }
                if t >= burn {
                    ll -= 0.5 * (LN_2PI + f.ln() + v * v / f);
                }
                f
            }
        };
        predict(ss, &mut ws.a, &mut ws.p, &mut ws.tmp);
        let scale = ws.p.iter().fold(0.0_f64, |acc, x| acc.max(x.abs()));
        let change =
            ws.p.iter()
                .zip(&ws.prev)
                .fold(0.0_f64, |acc, (x, y)| acc.max((x - y).abs()));
        if change <= STEADY_TOL * scale {
            steady = Some(f);
        }
    }
    ll
}

/// The smoothed signal `E[y_t | all observations]` and its variance, for every period.
/// Observed periods reproduce their observation (variance zero up to rounding).
#[derive(Debug, Clone, PartialEq)]
pub struct Smoothed {
    /// Smoothed mean of the series at each period.
    pub mean: Vec<f64>,
    /// Variance of the series at each period given all observations.
    pub variance: Vec<f64>,
}

/// Runs the filter forward, storing what the backward pass needs, then the Durbin–Koopman
/// smoother backward: `r_{t-1} = Zᵀv_t/F_t + L_tᵀ r_t`, `N_{t-1} = ZᵀZ/F_t + L_tᵀ N_t L_t`
/// at an observation, `r_{t-1} = Tᵀ r_t`, `N_{t-1} = Tᵀ N_t T` at a gap, and
/// `α̂_t = a_t + P_t r_{t-1}`, `V_t = P_t − P_t N_{t-1} P_t`.
pub fn smooth(ss: &StateSpace, y: &[f64]) -> Smoothed {
    let m = ss.m;
    let n = y.len();
    let mut pred_a = vec![0.0; n * m];
    let mut pred_p = vec![0.0; n * m * m];
    let mut pz_all = vec![0.0; n * m];
    let mut v_all = vec![0.0; n];
    let mut f_all = vec![f64::NAN; n];

    let mut a = vec![0.0; m];
    let mut p = ss.initial_cov.clone();
    let mut pz = vec![0.0; m];
    let mut tmp = vec![0.0; m * m];
    for (t, &yt) in y.iter().enumerate() {
        pred_a[t * m..(t + 1) * m].copy_from_slice(&a);
        pred_p[t * m * m..(t + 1) * m * m].copy_from_slice(&p);
        if yt.is_finite() {
            let (v, f) = update(ss, yt - ss.obs_intercept(t), &mut a, &mut p, &mut pz);
            v_all[t] = v;
            f_all[t] = f;
            pz_all[t * m..(t + 1) * m].copy_from_slice(&pz);
        }
        predict(ss, &mut a, &mut p, &mut tmp);
    }

    let tr = &ss.transition;
    let z = &ss.design;
    let mut r = vec![0.0; m];
    let mut r_new = vec![0.0; m];
    let mut nmat = vec![0.0; m * m];
    let mut n_new = vec![0.0; m * m];
    let mut l = vec![0.0; m * m];
    let mut k = vec![0.0; m];
    let mut mean = vec![0.0; n];
    let mut variance = vec![0.0; n];
    for t in (0..n).rev() {
        let observed = f_all[t].is_finite();
        if observed {
            let f = f_all[t];
            let pzt = &pz_all[t * m..(t + 1) * m];
            // K = T P Zᵀ / F, L = T − K Z
            for i in 0..m {
                let mut s = 0.0;
                for j in 0..m {
                    s += tr[i * m + j] * pzt[j];
                }
                k[i] = s / f;
            }
            for i in 0..m {
                for j in 0..m {
                    l[i * m + j] = tr[i * m + j] - k[i] * z[j];
                }
            }
        } else {
            l.copy_from_slice(tr);
        }
        // r_new = Lᵀ r (+ Zᵀ v/F)
        for j in 0..m {
            let mut s = 0.0;
            for i in 0..m {
                s += l[i * m + j] * r[i];
            }
            r_new[j] = s;
        }
        // n_new = Lᵀ N L (+ ZᵀZ/F); tmp = N L first
        for i in 0..m {
            for j in 0..m {
                let mut s = 0.0;
                for q in 0..m {
                    s += nmat[i * m + q] * l[q * m + j];
                }
                tmp[i * m + j] = s;
            }
        }
        for i in 0..m {
            for j in 0..m {
                let mut s = 0.0;
                for q in 0..m {
                    s += l[q * m + i] * tmp[q * m + j];
                }
                n_new[i * m + j] = s;
            }
        }
        if observed {
            let f = f_all[t];
            let vf = v_all[t] / f;
            for i in 0..m {
                r_new[i] += z[i] * vf;
                for j in 0..m {
                    n_new[i * m + j] += z[i] * z[j] / f;
                }
            }
        }
        // α̂ = a + P r_new; signal = c + Z α̂; variance = Zᵀ(P − P N P)Z
        let at = &pred_a[t * m..(t + 1) * m];
        let pt = &pred_p[t * m * m..(t + 1) * m * m];
        let mut signal = ss.obs_intercept(t);
        for i in 0..m {
            let mut s = at[i];
            for j in 0..m {
                s += pt[i * m + j] * r_new[j];
            }
            signal += z[i] * s;
        }
        // pz_t = P Z (predicted), reuse k as scratch for it
        for i in 0..m {
            let mut s = 0.0;
            for j in 0..m {
                s += pt[i * m + j] * z[j];
            }
            k[i] = s;
        }
        let mut zpz = 0.0;
        let mut quad = 0.0;
        for i in 0..m {
            zpz += z[i] * k[i];
            let mut s = 0.0;
            for j in 0..m {
                s += n_new[i * m + j] * k[j];
            }
            quad += k[i] * s;
        }
        mean[t] = signal;
        variance[t] = (zpz - quad).max(0.0);
        std::mem::swap(&mut r, &mut r_new);
        std::mem::swap(&mut nmat, &mut n_new);
    }
    Smoothed { mean, variance }
}
