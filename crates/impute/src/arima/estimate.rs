//! Maximum-likelihood estimation: the optimiser works on unconstrained reals (trend centred
//! and scaled by the data, AR and MA through the Monahan transform, log variance), so every
//! step it takes is a stationary, invertible model. L-BFGS with a central-difference gradient
//! (argmin) runs from each starting point; an optional Nelder–Mead polish follows.

use std::cell::{Cell, RefCell};

use argmin::core::{CostFunction, Executor, Gradient};
use argmin::solver::linesearch::BacktrackingLineSearch;
use argmin::solver::linesearch::condition::ArmijoCondition;
use argmin::solver::neldermead::NelderMead;
use argmin::solver::quasinewton::LBFGS;
use serde::{Deserialize, Serialize};

use super::kalman::{self, Workspace};
use super::start::{difference, start_params};
use super::statespace::StateSpace;
use super::transform::{constrain_stationary, unconstrain_stationary};
use super::{ArimaError, ArimaOrder, ArimaParams};

/// Cost returned for parameters the likelihood cannot be evaluated at; large but finite so
/// the line search backs off instead of failing.
const PENALTY: f64 = 1e10;

/// Change in the mean negative log-likelihood per observation at which a start is judged
/// (about 1e-5 in the log-likelihood of a day of minute data).
const LOOSE_TOL: f64 = 1e-8;
/// Iterations a start gets before judging; on flat ridges (over-differenced data, nearly
/// cancelling roots) L-BFGS creeps for long, and only the best start needs to finish.
const LOOSE_ITERS: u64 = 40;
/// Change at which the chosen start's search stops: far below the 1e-6 relative agreement
/// with statsmodels the tests ask for.
const TIGHT_TOL: f64 = 1e-12;

/// Knobs for [`fit`]; the defaults converge tightly on wearable series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FitOptions {
    /// Iteration cap for each L-BFGS run.
    pub max_iters: u64,
    /// Iteration cap for a Nelder–Mead polish after L-BFGS (0, the default, skips it: on the
    /// statsmodels fixtures L-BFGS alone already reaches the optimum to 1e-12).
    pub polish_iters: u64,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            max_iters: 300,
            polish_iters: 0,
        }
    }
}

/// A fitted model: order, parameters and how well they fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArimaFit {
    pub order: ArimaOrder,
    pub params: ArimaParams,
    /// Maximised exact log-likelihood (statsmodels' definition).
    pub loglike: f64,
    /// Akaike information criterion, `2k − 2 loglike` with k counting σ².
    pub aic: f64,
    /// Observed (non-missing) values the model was fitted to.
    pub nobs: usize,
    /// Likelihood evaluations spent.
    pub evaluations: u64,
}

/// Maps optimiser coordinates to model parameters and back.
#[derive(Debug, Clone)]
struct Scaling {
    order: ArimaOrder,
    trend_centre: f64,
    trend_scale: f64,
    var_scale: f64,
}

impl Scaling {
    fn new(y: &[f64], order: ArimaOrder) -> Self {
        let w: Vec<f64> = difference(y, order.d)
            .into_iter()
            .filter(|x| x.is_finite())
            .collect();
        let n = w.len().max(1) as f64;
        let mean = w.iter().sum::<f64>() / n;
        let var = w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let var = if var > 0.0 { var } else { 1.0 };
        Self {
            order,
            trend_centre: if order.has_trend() { mean } else { 0.0 },
            trend_scale: var.sqrt(),
            var_scale: var,
        }
    }

    fn to_params(&self, x: &[f64], out: &mut ArimaParams) {
        let o = self.order;
        let t = usize::from(o.has_trend());
        out.trend = if t == 1 {
            self.trend_centre + self.trend_scale * x[0]
        } else {
            0.0
        };
        constrain_stationary(&x[t..t + o.p], &mut out.ar);
        constrain_stationary(&x[t + o.p..t + o.p + o.q], &mut out.ma);
        for m in out.ma.iter_mut() {
            *m = -*m;
        }
        out.sigma2 = self.var_scale * x[x.len() - 1].exp();
    }

    fn to_unconstrained(&self, params: &ArimaParams) -> Option<Vec<f64>> {
        let o = self.order;
        let t = usize::from(o.has_trend());
        let mut x = vec![0.0; o.n_params()];
        if t == 1 {
            x[0] = (params.trend - self.trend_centre) / self.trend_scale;
        }
        unconstrain_stationary(&params.ar, &mut x[t..t + o.p])?;
        let neg_ma: Vec<f64> = params.ma.iter().map(|v| -v).collect();
        unconstrain_stationary(&neg_ma, &mut x[t + o.p..t + o.p + o.q])?;
        x[o.n_params() - 1] = (params.sigma2 / self.var_scale).ln();
        Some(x)
    }
}

/// The negative mean log-likelihood as a function of unconstrained coordinates, with the
/// scratch space its evaluations share.
struct Context<'a> {
    y: &'a [f64],
    nobs: f64,
    scaling: Scaling,
    scratch: RefCell<(Workspace, ArimaParams)>,
    evaluations: Cell<u64>,
}

impl Context<'_> {
    fn eval(&self, x: &[f64]) -> f64 {
        self.evaluations.set(self.evaluations.get() + 1);
        let mut guard = self.scratch.borrow_mut();
        let (ws, params) = &mut *guard;
        self.scaling.to_params(x, params);
        let Ok(ss) = StateSpace::new(self.scaling.order, params) else {
            return PENALTY;
        };
        let ll = kalman::loglike(&ss, self.y, ws);
        if ll.is_finite() {
            -ll / self.nobs
        } else {
            PENALTY
        }
    }
}

/// What argmin drives: a borrowed [`Context`], so a failed run leaves the context usable.
#[derive(Clone, Copy)]
struct Problem<'c, 'a>(&'c Context<'a>);

impl CostFunction for Problem<'_, '_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, x: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        Ok(self.0.eval(x))
    }
}

impl Gradient for Problem<'_, '_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;

    fn gradient(&self, x: &Vec<f64>) -> Result<Vec<f64>, argmin::core::Error> {
        // Central differences; coordinates are O(1) by construction, so one step size fits.
        let h = 1e-6;
        let mut xs = x.clone();
        let mut g = vec![0.0; x.len()];
        for i in 0..x.len() {
            xs[i] = x[i] + h;
            let up = self.0.eval(&xs);
            xs[i] = x[i] - h;
            let down = self.0.eval(&xs);
            xs[i] = x[i];
            g[i] = (up - down) / (2.0 * h);
        }
        Ok(g)
    }
}

/// L-BFGS from `x0`; returns the best point seen (never worse than the start).
fn run_lbfgs(ctx: &Context<'_>, x0: Vec<f64>, iters: u64, tol_cost: f64) -> (Vec<f64>, f64) {
    let start_cost = ctx.eval(&x0);
    // Backtracking needs only costs at trial points; a Wolfe search would pay a whole
    // finite-difference gradient at each.
    let Ok(armijo) = ArmijoCondition::new(1e-4) else {
        return (x0, start_cost);
    };
    let solver = LBFGS::new(BacktrackingLineSearch::new(armijo), 10)
        .with_tolerance_grad(1e-10)
        .and_then(|s| s.with_tolerance_cost(tol_cost));
    let result = solver.and_then(|solver| {
        Executor::new(Problem(ctx), solver)
            .configure(|s| s.param(x0.clone()).max_iters(iters))
            .run()
    });
    match result {
        Ok(mut res) => {
            let cost = res.state.get_best_cost();
            match res.state.take_best_param() {
                Some(best) if cost <= start_cost => (best, cost),
                _ => (x0, start_cost),
            }
        }
        // A line search that cannot make progress ends the run; the start stands.
        Err(_) => (x0, start_cost),
    }
}

/// Nelder–Mead from a small simplex around `x0`; returns the better of its result and `x0`.
fn run_nelder_mead(ctx: &Context<'_>, x0: Vec<f64>, cost0: f64, iters: u64) -> (Vec<f64>, f64) {
    if iters == 0 {
        return (x0, cost0);
    }
    let mut simplex = vec![x0.clone()];
    for i in 0..x0.len() {
        let mut v = x0.clone();
        v[i] += 1e-3;
        simplex.push(v);
    }
    let result = NelderMead::new(simplex)
        .with_sd_tolerance(1e-15)
        .and_then(|nm| {
            Executor::new(Problem(ctx), nm)
                .configure(|s| s.max_iters(iters))
                .run()
        });
    match result {
        Ok(mut res) => {
            let cost = res.state.get_best_cost();
            match res.state.take_best_param() {
                Some(best) if cost < cost0 => (best, cost),
                _ => (x0, cost0),
            }
        }
        Err(_) => (x0, cost0),
    }
}

/// Fits ARIMA `order` to `y` (NaN = missing) by exact maximum likelihood.
pub fn fit(y: &[f64], order: ArimaOrder, options: &FitOptions) -> Result<ArimaFit, ArimaError> {
    let nobs = y.iter().filter(|v| v.is_finite()).count();
    let needed = 2 * order.n_params() + order.d + 8;
    if nobs < needed {
        return Err(ArimaError::TooFewObservations {
            order,
            needed,
            got: nobs,
        });
    }
    let scaling = Scaling::new(y, order);
    let ctx = Context {
        y,
        nobs: nobs as f64,
        scaling: scaling.clone(),
        scratch: RefCell::new((
            Workspace::default(),
            ArimaParams {
                trend: 0.0,
                ar: vec![0.0; order.p],
                ma: vec![0.0; order.q],
                sigma2: 1.0,
            },
        )),
        evaluations: Cell::new(0),
    };
    // Hannan–Rissanen first. A mixed ARMA likelihood can have a second mode (nearly
    // cancelling AR and MA roots), so mixed orders also start from white noise.
    let mut starts = Vec::new();
    if let Some(x) = scaling.to_unconstrained(&start_params(y, order)) {
        starts.push(x);
    }
    if (order.p > 0 && order.q > 0) || starts.is_empty() {
        starts.push(vec![0.0; order.n_params()]);
    }
    // Every start is taken to a loose optimum, then only the best is refined tightly.
    let mut best: Option<(Vec<f64>, f64)> = None;
    for x0 in starts {
        let (x, cost) = run_lbfgs(&ctx, x0, options.max_iters.min(LOOSE_ITERS), LOOSE_TOL);
        if best.as_ref().is_none_or(|(_, c)| cost < *c) {
            best = Some((x, cost));
        }
    }
    let (x, _) = best.expect("at least one start");
    let (x, cost) = run_lbfgs(&ctx, x, options.max_iters, TIGHT_TOL);
    let (x, polished) = run_nelder_mead(&ctx, x, cost, options.polish_iters);
    // If the simplex found better ground, a last L-BFGS pass tightens it.
    let (x, cost) = if polished < cost {
        run_lbfgs(&ctx, x, options.max_iters, TIGHT_TOL)
    } else {
        (x, cost)
    };
    if cost.is_nan() || cost >= PENALTY {
        return Err(ArimaError::NoConvergence(order));
    }
    let mut params = ArimaParams {
        trend: 0.0,
        ar: vec![0.0; order.p],
        ma: vec![0.0; order.q],
        sigma2: 1.0,
    };
    scaling.to_params(&x, &mut params);
    let loglike = super::loglike(y, order, &params)?;
    Ok(ArimaFit {
        order,
        aic: 2.0 * order.n_params() as f64 - 2.0 * loglike,
        params,
        loglike,
        nobs,
        evaluations: ctx.evaluations.get(),
    })
}
