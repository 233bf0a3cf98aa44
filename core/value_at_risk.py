"""Value at risk per RFM persona and per risk tier, taken with each value fit (pure).

Value at risk of a customer = risk x CLV: the calibrated probability of no activity in
the horizon times the customer's value over ``CHURN_VALUE_CLV_DAYS`` (core/value.py).
The value fit (stream/jobs/value_fit.py) has every customer's persona and CLV at hand;
it reads their current risks and the tier edges of the ranking once, and this sums them:
per persona the customers, those scored (ranked: not churned, scored at least once),
their mean risk, the value at risk and the CLV; per tier the same. The console's
overview and segments page, ``GET /v1/overview`` and ``GET /v1/segments`` read the
result with the fit (at most 1M customers cost one pass of numpy, not a request's).

>>> import numpy as np
>>> b = at_risk_book(np.array([0, 0, 9]), np.array([0.5, np.nan, 0.2]),
...                  np.array([100.0, 50.0, 10.0]), np.array([0, -1, 3]))
>>> b["segments"]["champions"]
{'customers': 2, 'scored': 1, 'mean_risk': 0.5, 'value_at_risk': 50.0, 'clv': 150.0}
>>> b["tiers"]["low"]
{'customers': 1, 'value_at_risk': 2.0, 'clv': 10.0}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.segments import PERSONAS
from core.tiers import TIERS


def tier_index(risk: np.ndarray, users: list[str], edges: list[tuple[float, str] | None],
               absolute_cuts: tuple[float, ...] | None = None) -> np.ndarray:
    """Each user's tier (index into TIERS; -1 unscored) in the ranking now.

    Rank mode: ``edges[i]`` is the (risk, user) at the first rank of tier ``i + 1`` (None
    when that tier is empty at the end); a user ranks before it when its risk is higher,
    or equal and its id greater (Redis orders equal scores by member, descending here).
    Absolute mode: tier ``i`` while ``risk >= cut i``.

    >>> r = np.array([0.9, 0.5, 0.5, 0.1, np.nan])
    >>> tier_index(r, list("abcde"), [(0.5, "c"), (0.5, "b"), (0.1, "d")]).tolist()
    [0, 2, 1, 3, -1]
    >>> tier_index(r, list("abcde"), [(0.5, "c"), None, None]).tolist()
    [0, 1, 1, 1, -1]
    >>> tier_index(r, list("abcde"), [], (0.8, 0.5, 0.3)).tolist()
    [0, 1, 1, 3, -1]
    """
    out = np.full(len(risk), -1, dtype=np.int64)
    scored = ~np.isnan(risk)
    out[scored] = 0
    if absolute_cuts is not None:
        for cut in absolute_cuts:
            out[scored & (risk < cut)] += 1
        return out
    for edge in edges:
        if edge is None:
            continue
        e_risk, e_user = edge
        after = scored & (risk < e_risk)
        for i in np.flatnonzero(scored & (risk == e_risk)):
            after[i] = users[i] <= e_user  # the edge user itself begins the next tier
        out[after] += 1
    return out


def at_risk_book(persona: np.ndarray, risk: np.ndarray, clv: np.ndarray, tier: np.ndarray
                 ) -> dict[str, Any]:
    """Per persona (index into PERSONAS) and per tier (index into TIERS, -1 none):
    customers, scored, mean risk (None when nobody is scored), value at risk, CLV."""
    scored = ~np.isnan(risk)
    var = np.where(scored, np.nan_to_num(risk) * clv, 0.0)
    p = len(PERSONAS)

    def per(idx: np.ndarray, n: int, w: np.ndarray | None = None) -> np.ndarray:
        ok = idx >= 0
        return np.bincount(idx[ok], weights=None if w is None else w[ok], minlength=n)

    customers, n_scored = per(persona, p), per(persona, p, scored.astype(float))
    risk_sum = per(persona, p, np.nan_to_num(risk))
    segs = {name: {"customers": int(customers[i]), "scored": int(n_scored[i]),
                   "mean_risk": round(float(risk_sum[i] / n_scored[i]), 6)
                   if n_scored[i] else None,
                   "value_at_risk": round(float(v), 2), "clv": round(float(c), 2)}
            for i, (name, v, c) in enumerate(zip(PERSONAS, per(persona, p, var),
                                                 per(persona, p, clv), strict=True))}
    t = len(TIERS)
    tiers = {name: {"customers": int(n), "value_at_risk": round(float(v), 2),
                    "clv": round(float(c), 2)}
             for name, n, v, c in zip(TIERS, per(tier, t), per(tier, t, var),
                                      per(tier, t, clv), strict=True)}
    return {"segments": segs, "tiers": tiers}
