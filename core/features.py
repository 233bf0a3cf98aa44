"""Rolling-window features as pure functions of per-user daily buckets (docs/design.md section 4).

The state of a user is a handful of lifetime scalars plus one :class:`DayBucket`
per UTC day inside the 30-day horizon. :func:`window_aggregates` sums the
buckets of the windows that end on ``day(now)``; :func:`compute_features` turns
those sums into the 17 features. Both are free of I/O and shared by the live
worker, the API and offline evaluation.

>>> DAY = 86_400_000
>>> s = UserState(first_ms=0, last_ms=3 * DAY, last_purchase_ms=DAY)
>>> s.days[0] = DayBucket(n=2, carts=1, brands={"acme": 2})
>>> s.days[1] = DayBucket(n=1, purchases=1, spend=10.0, price_n=1, price_mean=10.0,
...                       brands={"acme": 1})
>>> s.days[3] = DayBucket(n=1, price_n=1, price_mean=20.0, switches=1, brands={"zen": 1})
>>> f = compute_features(window_aggregates(s, 3 * DAY))
>>> f["n_events_30d"], f["active_days_30d"], f["days_since_last_purchase"]
(4.0, 3.0, 2.0)
>>> f["price_volatility"], f["brand_concentration_ratio"], f["cart_abandon_ratio"]
(5.0, 0.75, 0.0)
>>> round(f["visit_regularity"], 6)  # gaps 1 and 2 days
0.333333
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import NamedTuple

DAY_MS = 86_400_000
HORIZON_DAYS = 30
NO_PURCHASE_DAYS = 365.0

FEATURE_NAMES: tuple[str, ...] = (
    "n_events_7d", "n_events_15d", "n_events_30d", "active_days_30d", "n_purchase_30d",
    "total_spend_30d", "purchase_ratio", "activity_ratio_15d", "activity_trend",
    "days_since_last_event", "days_since_last_purchase", "tenure_days", "visit_regularity",
    "price_volatility", "brand_concentration_ratio", "brand_switch_count_30d",
    "cart_abandon_ratio",
)


@dataclass(slots=True)
class DayBucket:
    """Aggregates of one user's events on one UTC day.

    Prices are kept as a Welford running mean / sum of squared deviations so that
    the population standard deviation over a window is exact to rounding and an
    all-equal price series gives exactly 0.
    """

    n: int = 0
    purchases: int = 0
    carts: int = 0
    spend: float = 0.0
    price_n: int = 0
    price_mean: float = 0.0
    price_m2: float = 0.0
    switches: int = 0
    brands: dict[str, int] = field(default_factory=dict)

    def add_price(self, x: float) -> None:
        """Welford update; the Lua script performs the same float operations."""
        self.price_n += 1
        delta = x - self.price_mean
        self.price_mean = self.price_mean + delta / self.price_n
        self.price_m2 = self.price_m2 + delta * (x - self.price_mean)


@dataclass(slots=True)
class UserState:
    """Lifetime scalars (epoch ms; ``last_purchase_ms`` is -1 when none) and day buckets."""

    first_ms: int
    last_ms: int
    last_purchase_ms: int = -1
    last_brand: str | None = None
    days: dict[int, DayBucket] = field(default_factory=dict)
    # customer-value inputs (issue 6): every UTC day with a purchase, ever; and the
    # purchase days whose spend is known (purchases applied to a day bucket), their spend
    purchase_days: set[int] = field(default_factory=set)
    value_n: int = 0
    value_sum: float = 0.0


class Aggregates(NamedTuple):
    now_ms: int
    n7: int
    n15: int
    n30: int
    active_days: tuple[int, ...]
    purchases: int
    carts: int
    spend: float
    price_n: int
    price_mean: float
    price_m2: float
    switches: int
    brand_total: int
    brand_max: int
    first_ms: int
    last_ms: int
    last_purchase_ms: int
    # lifetime purchase days, the first of them (-1 = none) and the purchase days whose
    # spend is known, with that spend: the inputs of BG/NBD and Gamma-Gamma (core.value)
    purchase_days: int = 0
    first_purchase_day: int = -1
    value_n: int = 0
    value_sum: float = 0.0
    # the long-range inputs' sums (core.long_range): purchase days in the 90/180/365 days
    # ending with day(now), the last purchase day (-1 = none) and the sum of squared gaps
    # between consecutive purchase days (an integer: exact in a double)
    purchase_days_90d: int = 0
    purchase_days_180d: int = 0
    purchase_days_365d: int = 0
    last_purchase_day: int = -1
    purchase_gap_sumsq: float = 0.0


def day_of(ms: int) -> int:
    """UTC calendar day number of an epoch-millisecond time.

    >>> day_of(0), day_of(DAY_MS - 1), day_of(DAY_MS), day_of(-1)
    (0, 0, 1, -1)
    """
    return ms // DAY_MS


def window_aggregates(state: UserState, now_ms: int) -> Aggregates:
    """Sums over the 7/15/30-day windows ending on ``day(now_ms)`` (inclusive).

    ``now_ms`` must not precede the user's newest event: buckets hold whole
    days, so an earlier reference time cannot be answered exactly.
    """
    if now_ms < state.last_ms:
        raise ValueError("now precedes the user's newest event")
    today = now_ms // DAY_MS
    lo30, lo15, lo7 = today - 29, today - 14, today - 6
    n7 = n15 = n30 = purchases = carts = switches = price_n = 0
    spend = price_mean = price_m2 = 0.0
    active: list[int] = []
    brands: dict[str, int] = {}
    for day in sorted(state.days):
        if day < lo30 or day > today:
            continue
        b = state.days[day]
        if b.n <= 0:
            continue
        active.append(day)
        n30 += b.n
        if day >= lo15:
            n15 += b.n
            if day >= lo7:
                n7 += b.n
        purchases += b.purchases
        carts += b.carts
        spend += b.spend
        switches += b.switches
        if b.price_n:
            # Chan et al. pairwise combination of (n, mean, M2)
            tot = price_n + b.price_n
            delta = b.price_mean - price_mean
            price_mean = price_mean + delta * b.price_n / tot
            price_m2 = price_m2 + b.price_m2 + delta * delta * price_n * b.price_n / tot
            price_n = tot
        for brand, cnt in b.brands.items():
            brands[brand] = brands.get(brand, 0) + cnt
    pdays = sorted(state.purchase_days)
    sumsq = 0
    for a, b_ in itertools.pairwise(pdays):
        sumsq += (b_ - a) * (b_ - a)
    return Aggregates(
        now_ms=now_ms, n7=n7, n15=n15, n30=n30, active_days=tuple(active),
        purchases=purchases, carts=carts, spend=spend, price_n=price_n,
        price_mean=price_mean, price_m2=price_m2, switches=switches,
        brand_total=sum(brands.values()), brand_max=max(brands.values(), default=0),
        first_ms=state.first_ms, last_ms=state.last_ms,
        last_purchase_ms=state.last_purchase_ms,
        purchase_days=len(state.purchase_days),
        first_purchase_day=pdays[0] if pdays else -1,
        value_n=state.value_n, value_sum=state.value_sum,
        purchase_days_90d=sum(1 for d in pdays if d > today - 90),
        purchase_days_180d=sum(1 for d in pdays if d > today - 180),
        purchase_days_365d=sum(1 for d in pdays if d > today - 365),
        last_purchase_day=pdays[-1] if pdays else -1, purchase_gap_sumsq=float(sumsq),
    )


def _cv_of_gaps(days: tuple[int, ...]) -> float:
    if len(days) < 3:
        return 0.0
    gaps = [b - a for a, b in itertools.pairwise(days)]
    mean = sum(gaps) / len(gaps)  # (integers: exact)
    acc = 0.0  # summed in order, as core/feature_matrix.py does for many users at once
    for g in gaps:
        d = g - mean
        acc += d * d
    return math.sqrt(acc / len(gaps)) / mean


def compute_features(agg: Aggregates) -> dict[str, float]:
    """The 17 features of docs/design.md section 4, by name, as floats."""
    now = agg.now_ms
    n30 = agg.n30
    return {
        "n_events_7d": float(agg.n7),
        "n_events_15d": float(agg.n15),
        "n_events_30d": float(n30),
        "active_days_30d": float(len(agg.active_days)),
        "n_purchase_30d": float(agg.purchases),
        "total_spend_30d": agg.spend,
        "purchase_ratio": agg.purchases / n30 if n30 else 0.0,
        "activity_ratio_15d": agg.n15 / n30 if n30 else 0.0,
        "activity_trend": (agg.n7 - (agg.n15 - agg.n7) * 7 / 8) / max(1, agg.n15),
        "days_since_last_event": (now - agg.last_ms) / DAY_MS,
        "days_since_last_purchase": (now - agg.last_purchase_ms) / DAY_MS
        if agg.last_purchase_ms >= 0 else NO_PURCHASE_DAYS,
        "tenure_days": (now - agg.first_ms) / DAY_MS,
        "visit_regularity": _cv_of_gaps(agg.active_days),
        "price_volatility": math.sqrt(max(0.0, agg.price_m2 / agg.price_n)) if agg.price_n
        else 0.0,
        "brand_concentration_ratio": agg.brand_max / agg.brand_total if agg.brand_total else 0.0,
        "brand_switch_count_30d": float(agg.switches),
        "cart_abandon_ratio": (agg.carts - min(agg.carts, agg.purchases)) / max(1, agg.carts),
    }


def features_at(state: UserState, now_ms: int | None = None) -> dict[str, float]:
    """Features of ``state`` at ``now_ms`` (default: the user's newest event)."""
    return compute_features(window_aggregates(state, state.last_ms if now_ms is None else now_ms))
