"""Customer value per user: BG/NBD + Gamma-Gamma on the streaming purchase summary.

Inputs (issue 6, in whole UTC days): ``x`` = distinct purchase days after the first,
``t_x`` = last purchase day - first purchase day, ``T`` = day(now) - first purchase day;
``n`` and ``spend`` = the purchase days whose spend is known and their total spend (a
purchase that arrives later than the 30-day horizon marks its day but adds no spend: it
could not be deduplicated). Users without a purchase have no summary.

CLV sums the expected purchases of each 30-day period of the CLV horizon times the
expected spend per purchase day, discounted per period (as in the ``lifetimes``
package's ``customer_lifetime_value``).

>>> from core.bgnbd import BGNBD
>>> from core.gammagamma import GammaGamma
>>> p = ValueParams(1, BGNBD(0.243, 4.414, 0.793, 2.426), GammaGamma(6.25, 3.74, 15.44))
>>> v = user_value(p, ValueInputs(2, 30, 38, 3, 90.0), horizon_days=39, clv_days=360,
...                discount=0.01)
>>> round(v.p_alive, 4), round(v.expected_purchases, 3), round(v.value_per_purchase, 2)
(0.73, 1.253, 30.67)
>>> v.clv > v.expected_purchases * v.value_per_purchase  # a year holds more than 39 days
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np
from scipy.special import hyp2f1

from core import bgnbd, gammagamma
from core.bgnbd import BGNBD
from core.features import DAY_MS, Aggregates
from core.gammagamma import GammaGamma
from core.model import VALUE_INPUT_NAMES

PERIOD_DAYS = 30


class ValueInputs(NamedTuple):
    x: int
    t_x: int
    T: int
    n: int
    spend: float

    @property
    def mean_spend(self) -> float:
        return self.spend / self.n if self.n else 0.0


def value_inputs(agg: Aggregates) -> ValueInputs | None:
    """The user's purchase summary at ``agg.now_ms``; None before the first purchase."""
    if agg.purchase_days == 0:
        return None
    first = agg.first_purchase_day
    return ValueInputs(agg.purchase_days - 1, agg.last_purchase_ms // DAY_MS - first,
                       agg.now_ms // DAY_MS - first, agg.value_n, agg.value_sum)


class ValueParams(NamedTuple):
    """A fitted, versioned pair of population models (stored in Redis as JSON)."""

    version: int
    bgnbd: BGNBD
    gg: GammaGamma
    fitted_at_ms: int = 0
    customers: int = 0  # summaries the BG/NBD fit saw
    valued: int = 0  # customers with a positive mean spend (the Gamma-Gamma fit)
    seconds: float = 0.0
    retired: int = 0  # customers deleted after the retention period, still in BG/NBD

    def to_json(self) -> bytes:
        d = self._asdict()
        d["bgnbd"], d["gg"] = self.bgnbd._asdict(), self.gg._asdict()
        return json.dumps(d).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> ValueParams:
        """
        >>> p = ValueParams(3, BGNBD(1.0, 2.0, 3.0, 4.0), GammaGamma(5.0, 6.0, 7.0), 9, 10)
        >>> ValueParams.from_json(p.to_json()) == p
        True
        """
        d = json.loads(raw)
        d["bgnbd"], d["gg"] = BGNBD(**d["bgnbd"]), GammaGamma(**d["gg"])
        return cls(**d)


class UserValue(NamedTuple):
    p_alive: float
    expected_purchases: float  # purchase days in the next horizon_days
    p_no_purchase: float  # probability of no purchase day in the next horizon_days
    value_per_purchase: float  # expected spend of a purchase day (Gamma-Gamma)
    clv: float


class ValueArrays(NamedTuple):
    p_alive: np.ndarray
    expected_purchases: np.ndarray
    p_no_purchase: np.ndarray
    value_per_purchase: np.ndarray
    clv: np.ndarray


def discounted_purchases(m: BGNBD, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                         clv_days: int, discount: float) -> np.ndarray:
    """Expected purchase days of each 30-day period of the CLV horizon, discounted per
    period and summed: CLV = this x the spend per purchase day."""
    total = np.zeros(np.shape(x))
    prev = np.zeros(np.shape(x))
    for k in range(1, max(1, clv_days // PERIOD_DAYS) + 1):
        cum = bgnbd.expected_purchases(m, k * PERIOD_DAYS, x, t_x, T)
        total += (cum - prev) / (1.0 + discount) ** k
        prev = cum
    return total


def value_arrays(params: ValueParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                 n: np.ndarray, spend: np.ndarray, horizon_days: float, clv_days: int,
                 discount: float) -> ValueArrays:
    """:func:`user_value` for many users at once (one numpy pass per quantity)."""
    m = params.bgnbd
    n = np.asarray(n, float)
    mean = np.divide(spend, n, out=np.zeros_like(n), where=n > 0)
    per = gammagamma.expected_spend(params.gg, n, mean)
    clv = discounted_purchases(m, x, t_x, T, clv_days, discount)
    return ValueArrays(bgnbd.p_alive(m, x, t_x, T),
                       bgnbd.expected_purchases(m, horizon_days, x, t_x, T),
                       bgnbd.p_no_purchase(m, horizon_days, x, t_x, T), per, clv * per)


@lru_cache(maxsize=131_072)
def _bgnbd_part(m: BGNBD, x: float, t_x: float, T: float, horizon_days: float, clv_days: int,
                discount: float) -> tuple[float, float, float, float]:
    """(P(alive), E[purchases in horizon], P(none in horizon), discounted purchases over
    the CLV horizon): everything that depends only on (x, t_x, T). Cached: customers
    share few distinct whole-day summaries (about 150k among 1M), and these 14
    hypergeometric evaluations are most of a lookup's value cost."""
    r, alpha, a, b = m
    alive = 1.0
    if x > 0:
        log_ratio = (math.log(a) - math.log(b + x - 1)
                     + (r + x) * (math.log(alpha + T) - math.log(alpha + t_x)))
        alive = 1.0 / (1.0 + math.exp(min(log_ratio, 700.0)))
    head = (a + b + x - 1) / (a - 1)

    def expected(t: float) -> float:
        tail = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * float(
            hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t)))
        return head * tail * alive

    total = prev = 0.0
    for k in range(1, max(1, clv_days // PERIOD_DAYS) + 1):
        cum = expected(k * PERIOD_DAYS)
        total += (cum - prev) / (1.0 + discount) ** k
        prev = cum
    no_buy = (1 - alive) + alive * ((alpha + T) / (alpha + T + horizon_days)) ** (r + x)
    return alive, expected(horizon_days), no_buy, total


def user_value(params: ValueParams, v: ValueInputs, horizon_days: float, clv_days: int,
               discount: float) -> UserValue:
    """Everything the API serves about one user's value: the formulas of
    :func:`value_arrays` in scalar math (a lookup must not pay numpy's per-call cost)."""
    alive, expected, no_buy, purchases = _bgnbd_part(
        params.bgnbd, float(v.x), float(v.t_x), float(v.T), float(horizon_days), clv_days,
        discount)
    p, q, gamma = params.gg
    per = (gamma + v.spend) * p / (p * v.n + q - 1)
    return UserValue(alive, expected, no_buy, per, purchases * per)


def summary_arrays(aggs: Sequence[Aggregates]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(customer flag, x, t_x, T) at each ``agg.now_ms``. A user who has not purchased
    counts as a customer born at the first event with no purchase (x = t_x = 0, T = days
    since the first event), so every user gets BG/NBD inputs; the flag tells which."""
    n = len(aggs)
    cust, x, t_x, T = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    for i, agg in enumerate(aggs):
        today = agg.now_ms // DAY_MS
        if agg.purchase_days:
            first = agg.first_purchase_day
            cust[i], x[i] = 1.0, agg.purchase_days - 1
            t_x[i], T[i] = agg.last_purchase_ms // DAY_MS - first, today - first
        else:
            T[i] = today - agg.first_ms // DAY_MS
    return cust, x, t_x, T


def bgnbd_inputs(m: BGNBD | None, horizon_days: float, cust: np.ndarray, x: np.ndarray,
                 t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """The online model's optional BG/NBD inputs, one row per user, columns in
    ``VALUE_INPUT_NAMES`` order: customer flag, P(alive), E[purchase days in the next
    ``horizon_days``], P(no purchase day in them). Before the first fit (``m`` None):
    P(alive) 1, E 0, P(none) 0 (a constant: it ranks nobody). A fit that identified no
    drop-out (:func:`core.bgnbd.identified`) is the NBD model without drop-out: P(alive)
    is then exactly 1 for everyone (not 1 to six decimals, a near-constant that a scaler
    would later blow up), while E and P(none) still rank customers by frequency.

    >>> m = BGNBD(0.243, 4.414, 0.793, 2.426)
    >>> bgnbd_inputs(m, 39, np.array([1.0]), np.array([2.0]), np.array([30.0]),
    ...              np.array([38.0])).round(3).tolist()
    [[1.0, 0.73, 1.253, 0.439]]
    >>> bgnbd_inputs(None, 30, *(np.zeros(1),) * 4).tolist()
    [[0.0, 1.0, 0.0, 0.0]]
    >>> # no drop-out identified: the NBD closed forms, E = (r + x) H / (alpha + T) and
    >>> # P(none) = ((alpha + T) / (alpha + T + H)) ** (r + x): 2.243 * 39 / 42.414 = 2.062
    >>> nbd = BGNBD(0.243, 4.414, 1e-4, 22026.5)
    >>> bgnbd_inputs(nbd, 39, np.ones(2), np.array([2.0, 9.0]), np.array([30.0, 30.0]),
    ...              np.array([38.0, 38.0])).round(3).tolist()
    [[1.0, 1.0, 2.062, 0.232], [1.0, 1.0, 8.499, 0.002]]
    """
    out = np.empty((len(cust), len(VALUE_INPUT_NAMES)))
    out[:, 0] = cust
    if m is None:
        out[:, 1], out[:, 2], out[:, 3] = 1.0, 0.0, 0.0
        return out
    with np.errstate(over="ignore", invalid="ignore"):
        out[:, 1] = bgnbd.p_alive(m, x, t_x, T) if bgnbd.identified(m) else 1.0
        e = bgnbd.expected_purchases(m, horizon_days, x, t_x, T)
        none = bgnbd.p_no_purchase(m, horizon_days, x, t_x, T)
    out[:, 2] = np.where(np.isfinite(e), e, 0.0)
    out[:, 3] = np.where(np.isfinite(none), none, 1.0)
    return out
