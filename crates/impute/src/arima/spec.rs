//! What an ARIMA model is: its order and its parameters, named and laid out as statsmodels
//! lays them out (trend, AR, MA, innovation variance), so fixtures and reports line up.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ArimaError;

/// Largest AR or MA order accepted; beyond this the state grows without a use for wearables.
pub const MAX_ARMA_ORDER: usize = 6;
/// Largest differencing order accepted.
pub const MAX_DIFF: usize = 2;

/// The order (p, d, q) of an ARIMA model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ArimaOrder {
    /// Autoregressive order.
    pub p: usize,
    /// Differencing order.
    pub d: usize,
    /// Moving-average order.
    pub q: usize,
}

impl ArimaOrder {
    /// An order within the supported limits (p, q ≤ 6, d ≤ 2).
    pub fn new(p: usize, d: usize, q: usize) -> Result<Self, ArimaError> {
        if p > MAX_ARMA_ORDER || q > MAX_ARMA_ORDER || d > MAX_DIFF {
            return Err(ArimaError::InvalidOrder(format!(
                "({p},{d},{q}) is outside p,q <= {MAX_ARMA_ORDER}, d <= {MAX_DIFF}"
            )));
        }
        Ok(Self { p, d, q })
    }

    /// Whether the model carries a constant: the mean for d = 0, the drift (the mean of the
    /// differenced series) for d = 1. With d = 2 a constant would be a quadratic trend in the
    /// levels, which no physiological series has, so there is none.
    pub fn has_trend(self) -> bool {
        self.d <= 1
    }

    /// Number of estimated parameters, the innovation variance included (AIC counts these).
    pub fn n_params(self) -> usize {
        usize::from(self.has_trend()) + self.p + self.q + 1
    }

    /// Parameter names in [`ArimaParams::to_vec`] order: `const` or `drift`, `ar.L1`…,
    /// `ma.L1`…, `sigma2` (statsmodels' names, except that it calls the drift `x1`).
    pub fn param_names(self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.n_params());
        if self.has_trend() {
            names.push(if self.d == 0 { "const" } else { "drift" }.to_owned());
        }
        names.extend((1..=self.p).map(|i| format!("ar.L{i}")));
        names.extend((1..=self.q).map(|i| format!("ma.L{i}")));
        names.push("sigma2".to_owned());
        names
    }

    /// Dimension of the ARMA block of the state, max(p, q + 1).
    pub(crate) fn arma_dim(self) -> usize {
        self.p.max(self.q + 1)
    }
}

impl fmt::Display for ArimaOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({},{},{})", self.p, self.d, self.q)
    }
}

impl FromStr for ArimaOrder {
    type Err = ArimaError;

    /// Parses `p,d,q`, e.g. `2,1,1`.
    fn from_str(s: &str) -> Result<Self, ArimaError> {
        let parts: Vec<_> = s.split(',').map(str::trim).collect();
        let bad = || ArimaError::InvalidOrder(format!("{s:?} is not of the form p,d,q"));
        let [p, d, q] = parts.as_slice() else {
            return Err(bad());
        };
        let n = |x: &str| x.parse::<usize>().map_err(|_| bad());
        ArimaOrder::new(n(p)?, n(d)?, n(q)?)
    }
}

/// Parameters of an ARIMA model in the constrained (model) space.
///
/// The model is `(1 - φ(L)) (Δ^d y_t - μ) = (1 + θ(L)) ε_t`, `ε_t ~ N(0, σ²)`, where `μ` is
/// `trend` (the mean for d = 0, the drift for d = 1, absent for d = 2). In statsmodels terms
/// the trend enters as a regression on `1` (d = 0) or on `t = 1, 2, …` (d = 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArimaParams {
    /// Mean (d = 0) or drift (d = 1); zero and unused for d = 2.
    pub trend: f64,
    /// AR coefficients φ₁…φ_p (`ar.L1`…).
    pub ar: Vec<f64>,
    /// MA coefficients θ₁…θ_q (`ma.L1`…).
    pub ma: Vec<f64>,
    /// Innovation variance σ².
    pub sigma2: f64,
}

impl ArimaParams {
    /// The parameters as one vector in [`ArimaOrder::param_names`] order.
    pub fn to_vec(&self, order: ArimaOrder) -> Vec<f64> {
        let mut v = Vec::with_capacity(order.n_params());
        if order.has_trend() {
            v.push(self.trend);
        }
        v.extend_from_slice(&self.ar);
        v.extend_from_slice(&self.ma);
        v.push(self.sigma2);
        v
    }

    /// Reads a vector laid out as [`ArimaOrder::param_names`].
    pub fn from_slice(order: ArimaOrder, v: &[f64]) -> Result<Self, ArimaError> {
        if v.len() != order.n_params() {
            return Err(ArimaError::InvalidParams(format!(
                "order {order} takes {} parameters, got {}",
                order.n_params(),
                v.len()
            )));
        }
        let t = usize::from(order.has_trend());
        Ok(Self {
            trend: if t == 1 { v[0] } else { 0.0 },
            ar: v[t..t + order.p].to_vec(),
            ma: v[t + order.p..t + order.p + order.q].to_vec(),
            sigma2: v[v.len() - 1],
        })
    }

    /// Checks lengths against `order`, a positive variance and finite values.
    pub(crate) fn validate(&self, order: ArimaOrder) -> Result<(), ArimaError> {
        if self.ar.len() != order.p || self.ma.len() != order.q {
            return Err(ArimaError::InvalidParams(format!(
                "order {order} needs {} AR and {} MA coefficients, got {} and {}",
                order.p,
                order.q,
                self.ar.len(),
                self.ma.len()
            )));
        }
        let all_finite = self.trend.is_finite()
            && self.sigma2.is_finite()
            && self.ar.iter().chain(&self.ma).all(|x| x.is_finite());
        if !all_finite || self.sigma2 <= 0.0 {
            return Err(ArimaError::InvalidParams(
                "parameters must be finite with a positive variance".to_owned(),
            ));
        }
        Ok(())
    }
}
