//! Starting values for the likelihood search: the sample mean of the differenced series and
//! Hannan–Rissanen ARMA estimates (a long autoregression for the innovations, then least
//! squares on lagged values and lagged innovations), using only complete rows so gaps are
//! harmless. Estimates that are not stationary or invertible fall back to zero.

use super::linalg::solve_in_place;
use super::transform::unconstrain_stationary;
use super::{ArimaOrder, ArimaParams};

/// `Δ^d y`, with `NaN` wherever an input is missing.
pub(crate) fn difference(y: &[f64], d: usize) -> Vec<f64> {
    let mut w = y.to_vec();
    for _ in 0..d {
        w = w.windows(2).map(|p| p[1] - p[0]).collect();
    }
    w
}

fn mean_and_var(w: &[f64]) -> (f64, f64, usize) {
    let obs: Vec<f64> = w.iter().copied().filter(|x| x.is_finite()).collect();
    let n = obs.len();
    if n == 0 {
        return (0.0, 1.0, 0);
    }
    let mean = obs.iter().sum::<f64>() / n as f64;
    let var = obs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
    (mean, var, n)
}

/// Least squares of `target` on `regressors` over rows where everything is finite.
/// Returns the coefficients and the residual variance.
fn least_squares(target: &[f64], regressors: &[Vec<f64>]) -> Option<(Vec<f64>, f64)> {
    let k = regressors.len();
    let mut xtx = vec![0.0; k * k];
    let mut xty = vec![0.0; k];
    let mut rows = 0usize;
    let mut row = vec![0.0; k];
    for (t, &yt) in target.iter().enumerate() {
        if !yt.is_finite() {
            continue;
        }
        for (slot, reg) in row.iter_mut().zip(regressors) {
            *slot = reg[t];
        }
        if row.iter().any(|x| !x.is_finite()) {
            continue;
        }
        rows += 1;
        for i in 0..k {
            xty[i] += row[i] * yt;
            for j in 0..k {
                xtx[i * k + j] += row[i] * row[j];
            }
        }
    }
    if rows < 3 * k + 10 {
        return None;
    }
    let mut beta = xty;
    solve_in_place(&mut xtx, &mut beta, k)?;
    let mut ss = 0.0;
    for (t, &yt) in target.iter().enumerate() {
        let mut fit = 0.0;
        let mut ok = yt.is_finite();
        for (b, reg) in beta.iter().zip(regressors) {
            ok &= reg[t].is_finite();
            fit += b * reg[t];
        }
        if ok {
            ss += (yt - fit).powi(2);
        }
    }
    Some((beta, ss / rows as f64))
}

fn lagged(x: &[f64], lag: usize) -> Vec<f64> {
    (0..x.len())
        .map(|t| if t >= lag { x[t - lag] } else { f64::NAN })
        .collect()
}

fn is_stationary(coefs: &[f64]) -> bool {
    let mut scratch = vec![0.0; coefs.len()];
    unconstrain_stationary(coefs, &mut scratch).is_some()
}

/// Sensible starting parameters for `order` on `y` (NaN = missing).
pub(crate) fn start_params(y: &[f64], order: ArimaOrder) -> ArimaParams {
    let w = difference(y, order.d);
    let (mean, var, _) = mean_and_var(&w);
    let trend = if order.has_trend() { mean } else { 0.0 };
    let z: Vec<f64> = w.iter().map(|x| x - trend).collect();
    let var = if var > 0.0 { var } else { 1.0 };
    let mut params = ArimaParams {
        trend,
        ar: vec![0.0; order.p],
        ma: vec![0.0; order.q],
        sigma2: var,
    };
    if order.p + order.q == 0 {
        return params;
    }
    // Innovations from a long autoregression (only needed for MA terms).
    let innovations = if order.q > 0 {
        let long = (order.p + order.q + 3).max(8);
        let regs: Vec<Vec<f64>> = (1..=long).map(|l| lagged(&z, l)).collect();
        match least_squares(&z, &regs) {
            Some((beta, _)) => (0..z.len())
                .map(|t| {
                    let fit: f64 = beta.iter().zip(&regs).map(|(b, r)| b * r[t]).sum();
                    z[t] - fit
                })
                .collect(),
            None => return params,
        }
    } else {
        Vec::new()
    };
    let mut regs: Vec<Vec<f64>> = (1..=order.p).map(|l| lagged(&z, l)).collect();
    regs.extend((1..=order.q).map(|l| lagged(&innovations, l)));
    if let Some((beta, resid_var)) = least_squares(&z, &regs) {
        let ar = &beta[..order.p];
        let ma = &beta[order.p..];
        let neg_ma: Vec<f64> = ma.iter().map(|x| -x).collect();
        if is_stationary(ar) {
            params.ar = ar.to_vec();
        }
        if is_stationary(&neg_ma) {
            params.ma = ma.to_vec();
        }
        if resid_var > 0.0 && is_stationary(ar) && is_stationary(&neg_ma) {
            params.sigma2 = resid_var;
        }
    }
    params
}
