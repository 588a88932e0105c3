//! The state-space form of ARIMA(p,d,q) with a constant, laid out as statsmodels' SARIMAX
//! (Harvey's representation, differencing kept inside the state):
//!
//! ```text
//! y_t      = c_t + Z α_t                      (no measurement noise)
//! α_{t+1}  = T α_t + R ε_t,   ε_t ~ N(0, σ²)
//! ```
//!
//! The state holds d integrated levels followed by the ARMA block of dimension
//! k = max(p, q + 1). `c_t` is the mean (d = 0) or `drift · t` with `t = 1, 2, …` (d = 1),
//! statsmodels' regression on a trend with `trend_offset = 1`. The ARMA block starts from its
//! stationary distribution (the discrete Lyapunov equation); the integrated levels start
//! approximately diffuse with variance [`DIFFUSE_VARIANCE`], and the first d periods are left
//! out of the log-likelihood (statsmodels' `loglikelihood_burn`).

use super::linalg::solve_in_place;
use super::{ArimaError, ArimaOrder, ArimaParams};

/// Variance of the approximately diffuse integrated states (statsmodels' `initial_variance`).
pub const DIFFUSE_VARIANCE: f64 = 1e6;

/// The system matrices of one parameter set. Matrices are dense, row-major, `m × m`.
#[derive(Debug, Clone)]
pub struct StateSpace {
    pub(crate) order: ArimaOrder,
    /// State dimension m = d + max(p, q + 1).
    pub(crate) m: usize,
    pub(crate) transition: Vec<f64>,
    /// Nonzero entries of the transition `(row, col, value)`: it is mostly zeros, and the
    /// filter's cost is dominated by products with it.
    pub(crate) transition_nz: Vec<(usize, usize, f64)>,
    pub(crate) selection: Vec<f64>,
    pub(crate) design: Vec<f64>,
    pub(crate) initial_cov: Vec<f64>,
    pub(crate) sigma2: f64,
    trend: f64,
}

impl StateSpace {
    /// Builds the system for `params`; fails when the AR part is not stationary (the
    /// Lyapunov equation then has no positive solution).
    pub fn new(order: ArimaOrder, params: &ArimaParams) -> Result<Self, ArimaError> {
        params.validate(order)?;
        let d = order.d;
        let k = order.arma_dim();
        let m = d + k;
        let mut transition = vec![0.0; m * m];
        // Integrated levels: upper-triangular ones, each also adding the ARMA output.
        for i in 0..d {
            for j in i..d {
                transition[i * m + j] = 1.0;
            }
            transition[i * m + d] = 1.0;
        }
        // ARMA block: companion form with the AR coefficients down its first column.
        for (i, phi) in params.ar.iter().enumerate() {
            transition[(d + i) * m + d] = *phi;
        }
        for i in 0..k - 1 {
            transition[(d + i) * m + d + i + 1] = 1.0;
        }
        let mut selection = vec![0.0; m];
        selection[d] = 1.0;
        for (j, theta) in params.ma.iter().enumerate() {
            selection[d + 1 + j] = *theta;
        }
        let mut design = vec![0.0; m];
        for z in design.iter_mut().take(d + 1) {
            *z = 1.0;
        }

        let mut initial_cov = vec![0.0; m * m];
        for i in 0..d {
            initial_cov[i * m + i] = DIFFUSE_VARIANCE;
        }
        let stationary = stationary_cov(&transition, &selection, params.sigma2, m, d)?;
        for i in 0..k {
            for j in 0..k {
                initial_cov[(d + i) * m + d + j] = stationary[i * k + j];
            }
        }
        let transition_nz = (0..m * m)
            .filter(|&ij| transition[ij] != 0.0)
            .map(|ij| (ij / m, ij % m, transition[ij]))
            .collect();
        Ok(Self {
            order,
            m,
            transition_nz,
            transition,
            selection,
            design,
            initial_cov,
            sigma2: params.sigma2,
            trend: if order.has_trend() { params.trend } else { 0.0 },
        })
    }

    /// The deterministic part of the observation at period `t` (0-based).
    #[inline]
    pub(crate) fn obs_intercept(&self, t: usize) -> f64 {
        match self.order.d {
            0 => self.trend,
            1 => self.trend * (t + 1) as f64,
            _ => 0.0,
        }
    }

    /// Periods at the start left out of the log-likelihood.
    pub(crate) fn burn(&self) -> usize {
        self.order.d
    }
}

/// Solves Σ = T_c Σ T_cᵀ + σ² r rᵀ for the ARMA block (rows/columns d.. of the full system)
/// directly through the Kronecker form (I − T_c ⊗ T_c) vec Σ = vec Q, as SciPy's
/// `solve_discrete_lyapunov` does for small systems.
fn stationary_cov(
    transition: &[f64],
    selection: &[f64],
    sigma2: f64,
    m: usize,
    d: usize,
) -> Result<Vec<f64>, ArimaError> {
    let k = m - d;
    let tc = |i: usize, j: usize| transition[(d + i) * m + d + j];
    let kk = k * k;
    let mut lhs = vec![0.0; kk * kk];
    let mut rhs = vec![0.0; kk];
    for i in 0..k {
        for j in 0..k {
            let row = i * k + j;
            rhs[row] = sigma2 * selection[d + i] * selection[d + j];
            for a in 0..k {
                for b in 0..k {
                    let col = a * k + b;
                    let identity = if row == col { 1.0 } else { 0.0 };
                    lhs[row * kk + col] = identity - tc(i, a) * tc(j, b);
                }
            }
        }
    }
    solve_in_place(&mut lhs, &mut rhs, kk)
        .ok_or_else(|| ArimaError::InvalidParams("AR part is not stationary".to_owned()))?;
    // Symmetrise away rounding so the filter starts from an exactly symmetric matrix.
    for i in 0..k {
        for j in 0..i {
            let s = 0.5 * (rhs[i * k + j] + rhs[j * k + i]);
            rhs[i * k + j] = s;
            rhs[j * k + i] = s;
        }
    }
    if (0..k).any(|i| rhs[i * k + i].is_nan() || rhs[i * k + i] < 0.0) {
        return Err(ArimaError::InvalidParams(
            "AR part is not stationary".to_owned(),
        ));
    }
    Ok(rhs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ar1_starts_from_its_unconditional_variance() {
        let order = ArimaOrder::new(1, 0, 0).unwrap();
        let params = ArimaParams {
            trend: 0.0,
            ar: vec![0.6],
            ma: vec![],
            sigma2: 2.0,
        };
        let ss = StateSpace::new(order, &params).unwrap();
        assert!((ss.initial_cov[0] - 2.0 / (1.0 - 0.36)).abs() < 1e-12);
    }

    #[test]
    fn an_arma11_state_covariance_solves_the_lyapunov_equation() {
        let order = ArimaOrder::new(1, 1, 1).unwrap();
        let params = ArimaParams {
            trend: 0.1,
            ar: vec![0.5],
            ma: vec![0.4],
            sigma2: 1.5,
        };
        let ss = StateSpace::new(order, &params).unwrap();
        let m = ss.m;
        // Check Σ − T Σ Tᵀ − σ² R Rᵀ = 0 on the ARMA block (indices 1..3).
        for i in 1..m {
            for j in 1..m {
                let mut tst = 0.0;
                for a in 1..m {
                    for b in 1..m {
                        tst += ss.transition[i * m + a]
                            * ss.initial_cov[a * m + b]
                            * ss.transition[j * m + b];
                    }
                }
                let q = ss.sigma2 * ss.selection[i] * ss.selection[j];
                assert!((ss.initial_cov[i * m + j] - tst - q).abs() < 1e-12);
            }
        }
        assert_eq!(ss.initial_cov[0], DIFFUSE_VARIANCE);
    }

    #[test]
    fn a_unit_root_has_no_stationary_start() {
        let order = ArimaOrder::new(1, 0, 0).unwrap();
        let params = ArimaParams {
            trend: 0.0,
            ar: vec![1.0],
            ma: vec![],
            sigma2: 1.0,
        };
        assert!(StateSpace::new(order, &params).is_err());
    }
}
