"""``churnstream simulate --profile sparse``: a purchase-only, buy-till-you-die population.

A retail purchase panel rather than a click stream: most customers buy a few times a
year, and churn is a silent drop-out after a purchase, not a visible decline, so
recency is not the answer by construction. The process is BG/NBD (Fader, Hardie & Lee
2005, "Counting your customers the easy way") with Gamma-Gamma spend (Fader, Hardie &
Lee 2005, "RFM and CLV: using iso-value curves for customer base analysis"):

- customers are acquired over ``acquire_days`` (uniform arrival; at most the run) and
  make their first, trial purchase at arrival;
- while alive, a customer purchases as a Poisson process with rate lambda ~ Gamma(shape
  r, rate alpha) per day; after each *repeat* purchase the customer drops out for good
  with probability p ~ Beta(a, b) (none after the trial purchase, as in BG/NBD: so the
  number of repeat purchases until the drop-out is Geometric(p), drawn up front);
- each purchase's spend is Gamma(shape p_spend, rate nu), nu ~ Gamma(shape q, rate
  gamma) per customer: mean spend p_spend * gamma / (q - 1) across customers.

Defaults are the papers' CDNOW fits. BG/NBD was fitted in weeks (r = 0.243, alpha =
4.414, a = 0.793, b = 2.426): a weekly rate Gamma(r, alpha) is a daily rate
Gamma(r, 7 alpha), so alpha = 4.414 * 7 = 30.898 per day (r, a, b have no unit);
Gamma-Gamma p = 6.25, q = 3.74, gamma = 15.44 (mean spend 35.22).

Time is drawn in "process days" and mapped to the clock within each UTC day through
the hour-of-day profile :data:`offline.simulate.HOURLY` (a monotone change of time that
keeps every purchase on its day, so each day's count is still Poisson(lambda) and the
order of purchases, hence the drop-outs, is untouched). Purchases are generated one
day at a time from the customers' next purchase times (about 70 bytes a customer);
the purchase times use the seed's stream 1 and the purchases' brand, product and price
stream 2, so :meth:`SparsePopulation.truth` replays only the times and agrees with the
events.

>>> import json
>>> pop = SparsePopulation(users=200, days=120, seed=3)
>>> lines = list(pop.jsonl())
>>> lines == list(SparsePopulation(users=200, days=120, seed=3).jsonl())
True
>>> {json.loads(x)["event_type"] for x in lines}
{'purchase'}
>>> first = min(json.loads(x)["event_time"] for x in lines)
>>> first == min(t.arrival_ms for t in pop.truth())  # the trial purchase at arrival
True
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from offline.simulate import BRANDS, CATEGORIES, DAY_MS, HOURLY, START_MS, TYPES, Day, Simulated

PURCHASE = TYPES.index("purchase")
WEEKS_ALPHA = 4.414  # the CDNOW BG/NBD fit's alpha, per week
_CDF = np.concatenate([[0.0], np.cumsum(HOURLY)])


@dataclass(frozen=True, slots=True)
class SparseTruth:
    """What really happened to a customer (times in epoch ms)."""

    user_id: str
    arrival_ms: int  # the trial purchase
    dropout_ms: int | None  # the purchase after which the customer left; None: alive at the end
    rate: float  # purchases per day while alive (lambda)
    p: float  # drop-out probability after each repeat purchase
    mean_spend: float  # the customer's expected spend per purchase, p_spend / nu


def clock_ms(start_ms: int, u: np.ndarray) -> np.ndarray:
    """Epoch ms of process times ``u`` (days): the same UTC day, the hour of day
    following HOURLY (piecewise linear inverse of its distribution function).

    >>> clock_ms(0, np.array([0.0, 1.0, 2.5, 3.999999999])).tolist()  # day starts stay
    [0, 86400000, 228000000, 345599999]
    """
    day = np.floor(u)
    frac = u - day
    h = np.clip(np.searchsorted(_CDF, frac, side="right") - 1, 0, 23)
    hour = h + (frac - _CDF[h]) / HOURLY[h]
    within = np.minimum((hour * 3_600_000).astype(np.int64), DAY_MS - 1)
    return start_ms + day.astype(np.int64) * DAY_MS + within


class SparsePopulation(Simulated):
    def __init__(self, users: int = 1000, days: int = 60, seed: int = 7,
                 start_ms: int = START_MS, *, acquire_days: float = 90.0,
                 r: float = 0.243, alpha: float = WEEKS_ALPHA * 7, a: float = 0.793,
                 b: float = 2.426, p_spend: float = 6.25, q: float = 3.74,
                 gamma: float = 15.44) -> None:
        params = {"acquire_days": acquire_days, "r": r, "alpha": alpha, "a": a, "b": b,
                  "p_spend": p_spend, "q": q, "gamma": gamma}
        bad = [k for k, v in params.items() if not v > 0]
        if bad or users < 1 or days < 1:
            raise ValueError(f"must be > 0: {', '.join(bad) or 'users and days'}")
        self.n, self.days, self.seed, self.start_ms = users, days, seed, start_ms
        self.acquire_days = min(float(acquire_days), float(days))
        self.r, self.alpha, self.a, self.b = r, alpha, a, b
        self.p_spend, self.q, self.gamma = p_spend, q, gamma
        rng = np.random.default_rng([seed, 0])
        n = users
        self.arrival = rng.uniform(0.0, self.acquire_days, n)  # process days
        self.rate = rng.gamma(r, 1.0 / alpha, n)  # purchases per day
        self.p = rng.beta(a, b, n)
        # repeat purchases until the drop-out (the drop-out follows the last of them)
        self.drop_after = rng.geometric(np.maximum(self.p, 1e-12)).astype(np.int64)
        self.nu = rng.gamma(q, 1.0 / gamma, n)
        self.fav = rng.integers(0, len(BRANDS), n).astype(np.int8)
        self.loyalty = rng.beta(4, 2, n)
        self.category = rng.integers(0, len(CATEGORIES), n).astype(np.int8)
        self.ids = [f"u{i:07d}" for i in range(n)]

    @property
    def mean_spend(self) -> float:
        """The population's mean spend per purchase, p_spend * gamma / (q - 1)."""
        return self.p_spend * self.gamma / (self.q - 1) if self.q > 1 else float("inf")

    def _purchases(self) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """(day, process times, customers, repeat numbers; 0 = the trial) of each day's
        purchases, unordered; a customer who drops out gets no next purchase."""
        rng = np.random.default_rng([self.seed, 1])
        nxt = self.arrival.copy()
        made = np.zeros(self.n, np.int64)  # purchases so far
        for d in range(self.days):
            end = d + 1.0
            due = np.flatnonzero(nxt < end)
            parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
            while due.size:  # a fast buyer can purchase more than once a day
                t, j = nxt[due], made[due]
                parts.append((t, due, j))
                made[due] = j + 1
                gone = j == self.drop_after[due]  # drop_after >= 1: never after the trial
                gap = rng.exponential(1.0, due.size) / self.rate[due]
                nxt[due] = np.where(gone, np.inf, t + gap)
                due = due[nxt[due] < end]
            if parts:
                times, who, nth = (np.concatenate(c) for c in zip(*parts, strict=True))
                yield d, times, who, nth

    def days_of_events(self) -> Iterator[Day]:
        rng = np.random.default_rng([self.seed, 2])
        seq = 0
        for d, u, users, _ in self._purchases():
            time = clock_ms(self.start_ms, u)
            order = np.lexsort((users, time))
            time, users = time[order], users[order]
            m = len(users)
            loyal = rng.random(m) < self.loyalty[users]
            brand = np.where(loyal, self.fav[users], rng.integers(0, len(BRANDS), m))
            price = np.round(rng.gamma(self.p_spend, 1.0 / self.nu[users]), 2)
            product = (self.category[users].astype(np.int64) * 100_000 + brand * 1_000
                       + rng.integers(0, 1_000, m))
            session = d * 10_000_000 + np.arange(m)
            kind = np.full(m, PURCHASE, np.int8)
            yield Day(time, users, kind, brand, price, product, session, seq0=seq)
            seq += m

    def truth(self) -> Iterator[SparseTruth]:
        dropout = np.full(self.n, -1, np.int64)
        for _, u, users, j in self._purchases():
            gone = j == self.drop_after[users]
            dropout[users[gone]] = clock_ms(self.start_ms, u[gone])
        arrival = clock_ms(self.start_ms, self.arrival)
        spend = self.p_spend / self.nu
        for i, uid in enumerate(self.ids):
            out = int(dropout[i])
            yield SparseTruth(uid, int(arrival[i]), None if out < 0 else out,
                              _sig(self.rate[i]), _sig(self.p[i]), round(float(spend[i]), 4))


def _sig(v: float) -> float:
    """Six significant digits (rates span many orders of magnitude)."""
    return float(f"{float(v):.6g}")


def profile(name: str, users: int, days: int, seed: int,
            acquire_days: float | None = None) -> Simulated:
    """The population of a ``--profile`` (``ecommerce`` or ``sparse``)."""
    from offline.simulate import Population

    if name == "ecommerce":
        if acquire_days is not None:
            raise ValueError("acquire_days is a parameter of the sparse profile")
        return Population(users, days, seed)
    if name == "sparse":
        if acquire_days is None:
            return SparsePopulation(users, days, seed)
        return SparsePopulation(users, days, seed, acquire_days=acquire_days)
    raise ValueError(f"unknown profile: {name!r}")
