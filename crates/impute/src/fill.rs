//! Gap filling per metric. Every strategy fills only gaps of at most `max_gap` consecutive
//! missing points: a longer gap means the device was not worn, and inventing hours of data
//! would mislead the researchers who act on it. Observed values are never changed.
//!
//! - [`ImputationStrategy::Arima`]: fit ARIMA (fixed order or AIC over a grid), fill with the
//!   Kalman smoother (the conditional mean given the whole series, not a one-step forecast),
//!   clip to the metric's physiological bounds.
//! - [`ImputationStrategy::ForwardBackFill`]: carry the last value forward; a gap at the
//!   start takes the first value (as the seed's forward-then-back fill).
//! - [`ImputationStrategy::Linear`]: straight line between the neighbours; gaps at either end
//!   have only one neighbour and stay empty.
//! - [`ImputationStrategy::None`]: nothing is filled.

use serde::{Deserialize, Serialize};
use wearhouse_core::{ImputationStrategy, Metric};

use crate::arima::{self, ArimaError, ArimaFit, ArimaOrder, FitOptions, OrderGrid};

/// How to fill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FillConfig {
    /// Longest run of missing points that is filled; longer runs stay empty (non-wear).
    pub max_gap: usize,
    /// A fixed ARIMA order; `None` selects by AIC over `grid`.
    pub order: Option<ArimaOrder>,
    /// Orders tried when `order` is `None`.
    pub grid: OrderGrid,
    /// Optimiser settings.
    pub fit: FitOptions,
}

impl Default for FillConfig {
    /// Gaps up to 60 points (an hour of minute data) are filled; AIC over the default grid.
    fn default() -> Self {
        Self {
            max_gap: 60,
            order: None,
            grid: OrderGrid::default(),
            fit: FitOptions::default(),
        }
    }
}

/// A filled series, aligned with the input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filled {
    /// Observed or imputed value; `None` where the gap was left empty.
    pub values: Vec<Option<f64>>,
    /// Whether each value was imputed.
    pub imputed: Vec<bool>,
    /// Standard error of each ARIMA-imputed value (smoother variance, before clipping).
    pub std_error: Vec<Option<f64>>,
    /// The strategy actually applied (ARIMA falls back to linear on too little data).
    pub method: ImputationStrategy,
    /// The fitted model when the method is ARIMA.
    pub model: Option<ArimaFit>,
}

impl Filled {
    /// Number of values imputed.
    pub fn imputed_count(&self) -> usize {
        self.imputed.iter().filter(|b| **b).count()
    }
}

/// What can go wrong filling.
#[derive(Debug, thiserror::Error)]
pub enum FillError {
    #[error("ARIMA fit failed")]
    Arima(#[from] ArimaError),
}

/// A run of consecutive missing points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gap {
    start: usize,
    len: usize,
}

fn gaps(values: &[Option<f64>]) -> Vec<Gap> {
    let mut out = Vec::new();
    let mut t = 0;
    while t < values.len() {
        if values[t].is_none() {
            let start = t;
            while t < values.len() && values[t].is_none() {
                t += 1;
            }
            out.push(Gap {
                start,
                len: t - start,
            });
        } else {
            t += 1;
        }
    }
    out
}

fn clean(values: &[Option<f64>]) -> Vec<Option<f64>> {
    values.iter().map(|v| v.filter(|x| x.is_finite())).collect()
}

/// Fills `values` for `metric` with its catalogue strategy and bounds.
pub fn fill_metric(
    metric: Metric,
    values: &[Option<f64>],
    config: &FillConfig,
) -> Result<Filled, FillError> {
    let info = metric.info();
    fill(
        info.imputation,
        (info.min_value, info.max_value),
        values,
        config,
    )
}

/// Fills `values` with `strategy`, clipping imputed values to `bounds` (min, max).
pub fn fill(
    strategy: ImputationStrategy,
    bounds: (f64, f64),
    values: &[Option<f64>],
    config: &FillConfig,
) -> Result<Filled, FillError> {
    let values = clean(values);
    match strategy {
        ImputationStrategy::Arima => match fill_arima(&values, bounds, config) {
            Err(FillError::Arima(ArimaError::TooFewObservations { .. })) => Ok(fill_simple(
                ImputationStrategy::Linear,
                bounds,
                &values,
                config.max_gap,
            )),
            other => other,
        },
        s => Ok(fill_simple(s, bounds, &values, config.max_gap)),
    }
}

/// Fits ARIMA to `values` (fixed order or by AIC) and fills gaps of at most
/// `config.max_gap` points with the smoothed values, clipped to `bounds`.
pub fn fill_arima(
    values: &[Option<f64>],
    bounds: (f64, f64),
    config: &FillConfig,
) -> Result<Filled, FillError> {
    let values = clean(values);
    let y: Vec<f64> = values.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
    // Fit from the first observation: a leading gap carries no information, and with d ≥ 1
    // it would put the diffuse start's huge variance into the likelihood.
    let first = values.iter().position(Option::is_some).unwrap_or(y.len());
    let fit_y = &y[first..];
    let model = match config.order {
        Some(order) => arima::fit(fit_y, order, &config.fit)?,
        None => arima::select_order(fit_y, &config.grid, &config.fit)?,
    };
    let smoothed = arima::smooth(&y, model.order, &model.params)?;
    let mut filled = unfilled(&values, ImputationStrategy::Arima);
    for gap in gaps(&values)
        .into_iter()
        .filter(|g| g.len <= config.max_gap)
    {
        for t in gap.start..gap.start + gap.len {
            filled.values[t] = Some(smoothed.mean[t].clamp(bounds.0, bounds.1));
            filled.imputed[t] = true;
            filled.std_error[t] = Some(smoothed.variance[t].sqrt());
        }
    }
    filled.model = Some(model);
    Ok(filled)
}

fn unfilled(values: &[Option<f64>], method: ImputationStrategy) -> Filled {
    Filled {
        values: values.to_vec(),
        imputed: vec![false; values.len()],
        std_error: vec![None; values.len()],
        method,
        model: None,
    }
}

/// The strategies that need no model.
fn fill_simple(
    strategy: ImputationStrategy,
    bounds: (f64, f64),
    values: &[Option<f64>],
    max_gap: usize,
) -> Filled {
    let mut filled = unfilled(values, strategy);
    let n = values.len();
    for gap in gaps(values).into_iter().filter(|g| g.len <= max_gap) {
        let before = gap.start.checked_sub(1).and_then(|t| values[t]);
        let after = values.get(gap.start + gap.len).copied().flatten();
        for (i, t) in (gap.start..gap.start + gap.len).enumerate() {
            let v = match (strategy, before, after) {
                (ImputationStrategy::ForwardBackFill, Some(b), _) => Some(b),
                (ImputationStrategy::ForwardBackFill, None, Some(a)) => Some(a),
                (ImputationStrategy::Linear, Some(b), Some(a)) => {
                    let w = (i + 1) as f64 / (gap.len + 1) as f64;
                    Some(b + w * (a - b))
                }
                _ => None,
            };
            if let Some(v) = v {
                filled.values[t] = Some(v.clamp(bounds.0, bounds.1));
                filled.imputed[t] = true;
            }
        }
    }
    debug_assert_eq!(filled.values.len(), n);
    filled
}

#[cfg(test)]
mod tests;
