"""Long-range inputs: what a customer who buys every few weeks or months looks like.

The 7/15/30-day windows of :mod:`core.features` are empty for most of the year for
such a customer. These inputs come from the lifetime set of purchase days (the
bitmap in the user hash, field ``v``, which the worker keeps anyway for customer
value) and the known spend of purchase days, at the reference time ``now``; day =
UTC calendar day, ``today`` = day(now). Like section 4 of the contract they are
exact: the Redis script returns integer counts and sums, and the float arithmetic
below is the same for the live path, the API and ``evaluate``.

| input | definition |
|---|---|
| purchase_days_total | distinct days with a purchase, ever |
| purchase_days_90d / 180d / 365d | purchase days in the W days ending with today |
| days_since_first_purchase | today - first purchase day (0 when none) |
| purchase_gap_mean_days | mean gap between consecutive purchase days (0 when < 2) |
| purchase_gap_cv | population std / mean of those gaps (0 when < 3 purchase days) |
| purchase_recency_vs_gap | (today - last purchase day) / purchase_gap_mean_days (0 when < 2) |
| spend_per_purchase_day | known spend / purchase days with known spend (0 when none) |

>>> from core.features import UserState, window_aggregates
>>> s = UserState(first_ms=0, last_ms=40 * DAY_MS, last_purchase_ms=40 * DAY_MS,
...               purchase_days={0, 10, 40}, value_n=2, value_sum=30.0)
>>> f = long_range(window_aggregates(s, 100 * DAY_MS))
>>> f["purchase_days_total"], f["purchase_days_90d"], f["days_since_first_purchase"]
(3.0, 1.0, 100.0)
>>> f["purchase_gap_mean_days"], f["purchase_recency_vs_gap"], f["spend_per_purchase_day"]
(20.0, 3.0, 15.0)
>>> f["purchase_gap_cv"]  # gaps 10 and 30
0.5
"""

from __future__ import annotations

import math

from core.features import DAY_MS, Aggregates

LONG_RANGE_NAMES: tuple[str, ...] = (
    "purchase_days_total", "purchase_days_90d", "purchase_days_180d", "purchase_days_365d",
    "days_since_first_purchase", "purchase_gap_mean_days", "purchase_gap_cv",
    "purchase_recency_vs_gap", "spend_per_purchase_day",
)
LONG_WINDOWS = (90, 180, 365)


def long_range(agg: Aggregates) -> dict[str, float]:
    """The long-range inputs at ``agg.now_ms``, by name, as floats."""
    n = agg.purchase_days
    today = agg.now_ms // DAY_MS
    first, last = agg.first_purchase_day, agg.last_purchase_day
    mean_gap = cv = recency = 0.0
    if n >= 2:
        mean_gap = (last - first) / (n - 1)
        recency = (today - last) / mean_gap
        if n >= 3:
            var = agg.purchase_gap_sumsq / (n - 1) - mean_gap * mean_gap
            cv = math.sqrt(max(0.0, var)) / mean_gap
    return {
        "purchase_days_total": float(n),
        "purchase_days_90d": float(agg.purchase_days_90d),
        "purchase_days_180d": float(agg.purchase_days_180d),
        "purchase_days_365d": float(agg.purchase_days_365d),
        "days_since_first_purchase": float(today - first) if n else 0.0,
        "purchase_gap_mean_days": mean_gap,
        "purchase_gap_cv": cv,
        "purchase_recency_vs_gap": recency,
        "spend_per_purchase_day": agg.value_sum / agg.value_n if agg.value_n else 0.0,
    }


def scoring_features(agg: Aggregates) -> dict[str, float]:
    """What every scorer is given: the 17 features and the long-range inputs."""
    from core.features import compute_features

    return {**compute_features(agg), **long_range(agg)}
