"""statsmodels side of the imputation benchmark (`cargo bench -p wearhouse-impute`).

Reads a JSON request on standard input:
``{"series": [[v or null, ...], ...], "order": [p, d, q] or null, "grid": [max_p, max_d, max_q]}``
and for each series times ``ARIMA(...).fit()`` (statsmodels' defaults; with ``order`` null,
every order of the grid, keeping the lowest AIC) plus the Kalman smoother, as wearhouse does.
Writes ``{"statsmodels": version, "seconds": [...], "orders": [...], "llf": [...],
"smoothed": [[...], ...]}`` on standard output.
"""

import json
import sys
import time
import warnings

import numpy as np
import statsmodels
from statsmodels.tsa.arima.model import ARIMA


def fit_order(y, order):
    model = ARIMA(y, order=order, trend="c" if order[1] == 0 else "t")
    return model.fit()


def main():
    warnings.simplefilter("ignore")
    req = json.load(sys.stdin)
    out = {"statsmodels": statsmodels.__version__, "seconds": [], "orders": [],
           "llf": [], "smoothed": []}
    for values in req["series"]:
        y = np.array([np.nan if v is None else v for v in values], dtype=float)
        start = time.perf_counter()
        if req.get("order"):
            best = fit_order(y, tuple(req["order"]))
        else:
            max_p, max_d, max_q = req["grid"]
            best = None
            for d in range(max_d + 1):
                for p in range(max_p + 1):
                    for q in range(max_q + 1):
                        try:
                            res = fit_order(y, (p, d, q))
                        except Exception:  # noqa: BLE001 - an order that fails is skipped
                            continue
                        if best is None or res.aic < best.aic:
                            best = res
        smoothed = best.smoother_results.smoothed_forecasts[0]
        out["seconds"].append(time.perf_counter() - start)
        out["orders"].append(list(best.model.order))
        out["llf"].append(float(best.llf))
        out["smoothed"].append([float(v) for v in smoothed])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
