//! ARIMA(p,d,q) with a constant, fitted by exact Gaussian maximum likelihood through a
//! Kalman filter that skips missing values, with gaps filled by the Kalman smoother. The
//! likelihood is statsmodels' (`statsmodels.tsa.arima.model.ARIMA` with its defaults), so
//! results can be checked against it; `tests/statsmodels.rs` does.

mod estimate;
mod kalman;
mod linalg;
mod select;
mod spec;
mod start;
mod statespace;
mod transform;

pub use estimate::{ArimaFit, FitOptions, fit};
pub use kalman::Smoothed;
pub use select::{OrderGrid, select_order};
pub use spec::{ArimaOrder, ArimaParams, MAX_ARMA_ORDER, MAX_DIFF};
pub use statespace::DIFFUSE_VARIANCE;
pub use transform::{constrain_stationary, unconstrain_stationary};

/// What can go wrong specifying, evaluating or fitting a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArimaError {
    #[error("invalid ARIMA order: {0}")]
    InvalidOrder(String),
    #[error("invalid ARIMA parameters: {0}")]
    InvalidParams(String),
    #[error("ARIMA{order} needs at least {needed} observed values, got {got}")]
    TooFewObservations {
        order: ArimaOrder,
        needed: usize,
        got: usize,
    },
    #[error("the likelihood of ARIMA{0} could not be evaluated anywhere the optimiser looked")]
    NoConvergence(ArimaOrder),
}

/// Exact log-likelihood of `y` (NaN = missing) under the model, as statsmodels'
/// `ARIMA(y, order, trend='c' if d == 0 else 't').loglike(params)`.
pub fn loglike(y: &[f64], order: ArimaOrder, params: &ArimaParams) -> Result<f64, ArimaError> {
    let ss = statespace::StateSpace::new(order, params)?;
    let ll = kalman::loglike(&ss, y, &mut kalman::Workspace::default());
    if ll.is_finite() {
        Ok(ll)
    } else {
        Err(ArimaError::InvalidParams(
            "the likelihood is not finite".to_owned(),
        ))
    }
}

/// The smoothed series `E[y_t | all observed y]` and its variance under the model.
pub fn smooth(y: &[f64], order: ArimaOrder, params: &ArimaParams) -> Result<Smoothed, ArimaError> {
    let ss = statespace::StateSpace::new(order, params)?;
    Ok(kalman::smooth(&ss, y))
}
