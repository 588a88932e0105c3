//! Order selection: fit every order in a small grid and keep the lowest AIC.

use serde::{Deserialize, Serialize};

use super::{ArimaError, ArimaFit, ArimaOrder, FitOptions, fit};

/// The orders [`select_order`] tries: every (p, d, q) with p ≤ `max_p`, d ≤ `max_d`,
/// q ≤ `max_q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderGrid {
    pub max_p: usize,
    pub max_d: usize,
    pub max_q: usize,
}

impl Default for OrderGrid {
    /// p ≤ 2, d ∈ {0, 1}, q ≤ 2.
    fn default() -> Self {
        Self {
            max_p: 2,
            max_d: 1,
            max_q: 2,
        }
    }
}

impl OrderGrid {
    /// The orders in the grid, simplest first.
    pub fn orders(&self) -> Result<Vec<ArimaOrder>, ArimaError> {
        let mut out = Vec::new();
        for d in 0..=self.max_d {
            for p in 0..=self.max_p {
                for q in 0..=self.max_q {
                    out.push(ArimaOrder::new(p, d, q)?);
                }
            }
        }
        Ok(out)
    }
}

/// Fits every order in `grid` and returns the fit with the lowest AIC. Orders that cannot be
/// fitted (too few observations) are skipped; the error of the last one is returned if none
/// can be.
///
/// AIC compares likelihoods of the same data, but with d = 1 the first period is left out of
/// the likelihood; the difference is one observation in hundreds, which is how statsmodels
/// users compare these orders too.
pub fn select_order(
    y: &[f64],
    grid: &OrderGrid,
    options: &FitOptions,
) -> Result<ArimaFit, ArimaError> {
    let mut best: Option<ArimaFit> = None;
    let mut last_err = None;
    for order in grid.orders()? {
        match fit(y, order, options) {
            Ok(f) => {
                if best.as_ref().is_none_or(|b| f.aic < b.aic) {
                    best = Some(f);
                }
            }
            Err(e) => last_err = Some(e),
        }
    }
    best.ok_or_else(|| last_err.unwrap_or(ArimaError::InvalidOrder("empty grid".to_owned())))
}
