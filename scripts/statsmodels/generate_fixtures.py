"""Reference fixtures for wearhouse-impute's ARIMA, computed with statsmodels.

Each fixture is a heart-rate-like series with gaps, an ARIMA order, the
log-likelihood and Kalman-smoothed signal at fixed parameters, and a tightly
converged maximum-likelihood optimum. The Rust tests in
``crates/impute/tests/statsmodels.rs`` read them; they need no Python.

The model is ``statsmodels.tsa.arima.model.ARIMA`` with its defaults
(state-space form with differencing inside the state, ``simple_differencing=False``,
approximate diffuse initialisation of the integrated states with variance 1e6,
stationary initialisation of the ARMA block, the first ``d`` periods burned from
the log-likelihood). "With a constant" means ``trend='c'`` for d = 0 and
``trend='t'`` (a drift: a constant in the differenced series) for d = 1;
statsmodels names that parameter ``x1``, wearhouse calls it ``drift``.

Regenerate (from the repository root)::

    python3 -m venv /tmp/sm && /tmp/sm/bin/pip install -r scripts/statsmodels/requirements.txt
    /tmp/sm/bin/python scripts/statsmodels/generate_fixtures.py

The series come from a fixed seed, so regenerating with the pinned versions
reproduces the committed files up to the optimiser's last digits.
"""

import json
import pathlib
import warnings

import numpy as np
from statsmodels.tsa.arima.model import ARIMA

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/impute/tests/fixtures"


def arma_noise(rng, n, ar, ma, sigma, burn=500):
    """A stationary ARMA path: x_t = sum ar_i x_{t-i} + e_t + sum ma_j e_{t-j}."""
    e = rng.normal(0.0, sigma, n + burn)
    x = np.zeros(n + burn)
    for t in range(n + burn):
        acc = e[t]
        for i, a in enumerate(ar, start=1):
            if t - i >= 0:
                acc += a * x[t - i]
        for j, m in enumerate(ma, start=1):
            if t - j >= 0:
                acc += m * e[t - j]
        x[t] = acc
    return x[burn:]


def punch_gaps(rng, y, single_rate, blocks):
    """Missing singles at `single_rate` plus (start, length) blocks; index 0 stays observed."""
    y = y.copy()
    mask = rng.random(len(y)) < single_rate
    mask[0] = False
    y[mask] = np.nan
    for start, length in blocks:
        y[start : start + length] = np.nan
    return y


def trend_for(d):
    return "c" if d == 0 else "t"


def names_for(order):
    p, d, q = order
    return (["const" if d == 0 else "drift"]
            + [f"ar.L{i}" for i in range(1, p + 1)]
            + [f"ma.L{i}" for i in range(1, q + 1)]
            + ["sigma2"])


def tight_fit(model):
    """Maximise the likelihood hard: several optimisers in turn, keeping the best."""
    best = model.fit()
    for method, kwargs in [
        ("lbfgs", dict(maxiter=10000, pgtol=1e-12, factr=1.0)),
        ("nm", dict(maxiter=40000, xtol=1e-12, ftol=1e-14)),
        ("bfgs", dict(maxiter=10000, gtol=1e-10)),
        ("powell", dict(maxiter=40000, xtol=1e-12, ftol=1e-14)),
        ("lbfgs", dict(maxiter=10000, pgtol=1e-12, factr=1.0)),
    ]:
        try:
            res = model.fit(start_params=best.params, method_kwargs=dict(
                method=method, disp=0, **kwargs))
        except Exception:  # noqa: BLE001 - an optimiser failing just keeps the best so far
            continue
        if np.isfinite(res.llf) and res.llf > best.llf:
            best = res
    return best


def fixture(name, y, order, fixed):
    model = ARIMA(y, order=order, trend=trend_for(order[1]))
    fixed = np.asarray(fixed, dtype=float)
    smoothed = model.smooth(fixed)
    best = tight_fit(model)
    return {
        "name": name,
        "order": list(order),
        "statsmodels_param_names": list(model.param_names),
        "param_names": names_for(order),
        "values": [None if np.isnan(v) else float(v) for v in y],
        "fixed_params": fixed.tolist(),
        "fixed_loglike": float(model.loglike(fixed)),
        "fixed_smoothed": [float(v) for v in smoothed.smoother_results.smoothed_forecasts[0]],
        "optimum_params": [float(v) for v in best.params],
        "optimum_loglike": float(best.llf),
        "optimum_aic": float(best.aic),
    }


def main():
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(20240607)
    OUT.mkdir(parents=True, exist_ok=True)
    cases = []

    # Resting heart rate wandering around 68 bpm: AR(1).
    n = 400
    y = 68 + arma_noise(rng, n, [0.8], [], 2.5)
    y = punch_gaps(rng, y, 0.05, [(150, 20)])
    cases.append(fixture("ar1_rest", y, (1, 0, 0), [68.0, 0.8, 6.25]))

    # Minute heart rate over a day with a long non-wear block: ARMA(1,1).
    n = 1440
    y = 72 + arma_noise(rng, n, [0.85], [0.3], 3.0)
    y = punch_gaps(rng, y, 0.03, [(300, 15), (700, 120), (1200, 5)])
    cases.append(fixture("arma11_day", y, (1, 0, 1), [72.0, 0.85, 0.3, 9.0]))

    # Drifting heart rate (exercise then recovery): ARIMA(2,1,1) with drift.
    n = 1500
    dy = 0.01 + arma_noise(rng, n, [0.5, -0.2], [-0.4], 1.2)
    y = 80 + np.cumsum(dy)
    y = punch_gaps(rng, y, 0.04, [(400, 30), (1000, 8)])
    cases.append(fixture("arima211_exercise", y, (2, 1, 1), [0.01, 0.5, -0.2, -0.4, 1.44]))

    # Random-walk-like level with MA noise: ARIMA(0,1,1).
    n = 600
    dy = arma_noise(rng, n, [], [-0.5], 1.5)
    y = 75 + np.cumsum(dy)
    y = punch_gaps(rng, y, 0.06, [(250, 12)])
    cases.append(fixture("arima011_walk", y, (0, 1, 1), [0.0, -0.5, 2.25]))

    # Second-order ARMA with a two-term MA, so the state is wider than p.
    n = 900
    y = 64 + arma_noise(rng, n, [1.1, -0.3], [0.4, 0.2], 2.0)
    y = punch_gaps(rng, y, 0.05, [(500, 40)])
    cases.append(fixture("arma22_sleep", y, (2, 0, 2), [64.0, 1.1, -0.3, 0.4, 0.2, 4.0]))

    for case in cases:
        path = OUT / f"{case['name']}.json"
        path.write_text(json.dumps(case, indent=1) + "\n")
        print(f"{path.name}: fixed llf {case['fixed_loglike']:.6f}, "
              f"optimum llf {case['optimum_loglike']:.6f}")


if __name__ == "__main__":
    main()
