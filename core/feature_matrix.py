"""The 17 features and the long-range inputs of many users at once, as one matrix.

The live path scores every touched or swept user of a batch together. Building one
``dict`` of 26 features per user (:func:`core.long_range.scoring_features`) and then a
matrix from the dicts cost about 15 us per user, more than the rest of the scoring;
:func:`feature_matrix` computes the same columns from the aggregates with array
arithmetic. Same definitions (docs/design.md section 4), the same floating-point
operations in the same order, so every row equals ``scoring_features`` bit for bit
(``tests/unit/test_feature_matrix.py``, hypothesis): a score does not depend on which
path computed it.

:class:`FeatureRows` carries the matrix to the scorers (``core.scoring.score_rows``)
and gives one user's features by name only where words are needed (an alert's reasons).

>>> from core.features import UserState, window_aggregates
>>> from core.long_range import scoring_features
>>> s = UserState(first_ms=0, last_ms=40 * DAY_MS, last_purchase_ms=40 * DAY_MS,
...               purchase_days={0, 10, 40}, value_n=2, value_sum=30.0)
>>> rows = FeatureRows.of([window_aggregates(s, 100 * DAY_MS)])
>>> rows[0]["days_since_last_event"], rows[0]["purchase_gap_cv"]
(60.0, 0.5)
>>> rows[0] == scoring_features(window_aggregates(s, 100 * DAY_MS))
True
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence

import numpy as np

from core.features import DAY_MS, FEATURE_NAMES, NO_PURCHASE_DAYS, Aggregates
from core.long_range import LONG_RANGE_NAMES

SOURCE_NAMES: tuple[str, ...] = (*FEATURE_NAMES, *LONG_RANGE_NAMES)

# Aggregates fields by position (a NamedTuple): integers (exact in int64) and floats
_INT_FIELDS = ("now_ms", "n7", "n15", "n30", "purchases", "carts", "price_n", "switches",
               "brand_total", "brand_max", "first_ms", "last_ms", "last_purchase_ms",
               "purchase_days", "first_purchase_day", "value_n", "purchase_days_90d",
               "purchase_days_180d", "purchase_days_365d", "last_purchase_day")
_FLOAT_FIELDS = ("spend", "price_m2", "value_sum", "purchase_gap_sumsq")
_ints = operator.itemgetter(*(Aggregates._fields.index(f) for f in _INT_FIELDS))
_floats = operator.itemgetter(*(Aggregates._fields.index(f) for f in _FLOAT_FIELDS))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` where ``den`` is not 0, else 0.0 (Python's ``a / b if b else 0.0``)."""
    return np.where(den != 0, num / np.where(den != 0, den, 1), 0.0)


def feature_matrix(aggs: Sequence[Aggregates]) -> np.ndarray:
    """One row per aggregate, columns :data:`SOURCE_NAMES`."""
    n = len(aggs)
    i = np.array([_ints(a) for a in aggs], dtype=np.int64).reshape(n, len(_INT_FIELDS)).T
    f = np.array([_floats(a) for a in aggs], dtype=np.float64).reshape(n, 4).T
    (now, n7, n15, n30, purchases, carts, price_n, switches, btot, bmax, first, last,
     last_p, pdays, first_pd, value_n, p90, p180, p365, last_pd) = i
    spend, price_m2, value_sum, gsq = f
    out = np.empty((n, len(SOURCE_NAMES)))
    cols = iter(out.T)
    for col in (n7, n15, n30):
        next(cols)[:] = col
    next(cols)[:] = [len(a.active_days) for a in aggs]
    next(cols)[:] = purchases
    next(cols)[:] = spend
    next(cols)[:] = _ratio(purchases, n30)
    next(cols)[:] = _ratio(n15, n30)
    next(cols)[:] = (n7 - (n15 - n7) * 7 / 8) / np.maximum(1, n15)
    next(cols)[:] = (now - last) / DAY_MS
    next(cols)[:] = np.where(last_p >= 0, (now - last_p) / DAY_MS, NO_PURCHASE_DAYS)
    next(cols)[:] = (now - first) / DAY_MS
    next(cols)[:] = _regularity(aggs, out[:, 3].astype(np.int64))
    next(cols)[:] = np.where(price_n != 0, np.sqrt(np.maximum(0.0, _ratio(price_m2, price_n))),
                             0.0)
    next(cols)[:] = _ratio(bmax, btot)
    next(cols)[:] = switches
    next(cols)[:] = (carts - np.minimum(carts, purchases)) / np.maximum(1, carts)
    # the long-range inputs (core.long_range)
    today = now // DAY_MS
    two, three = pdays >= 2, pdays >= 3
    mean_gap = np.where(two, (last_pd - first_pd) / np.where(two, pdays - 1, 1), 0.0)
    safe_gap = np.where(two, mean_gap, 1.0)
    var = gsq / np.where(three, pdays - 1, 1) - mean_gap * mean_gap
    for col in (pdays, p90, p180, p365):
        next(cols)[:] = col
    next(cols)[:] = np.where(pdays != 0, today - first_pd, 0)
    next(cols)[:] = mean_gap
    next(cols)[:] = np.where(three, np.sqrt(np.maximum(0.0, var)) / safe_gap, 0.0)
    next(cols)[:] = np.where(two, (today - last_pd) / safe_gap, 0.0)
    next(cols)[:] = _ratio(value_sum, value_n)
    return out


def _regularity(aggs: Sequence[Aggregates], lens: np.ndarray) -> np.ndarray:
    """``visit_regularity`` (:func:`core.features._cv_of_gaps`) of every user: the gaps
    of the users with 3+ active days in a zero-padded matrix, the squared deviations
    summed column by column (the scalar function's order: equal to the last bit)."""
    out = np.zeros(len(aggs))
    sel = np.flatnonzero(lens >= 3)
    if not sel.size:
        return out
    k = lens[sel] - 1  # gaps per user
    flat = np.fromiter(itertools.chain.from_iterable(aggs[i].active_days for i in sel.tolist()),
                       dtype=np.int64, count=int(lens[sel].sum()))
    steps = np.diff(flat)  # (the steps across two users are never read)
    starts = np.cumsum(lens[sel]) - lens[sel]
    width = int(k.max())
    inside = np.arange(width) < k[:, None]
    gaps = np.where(inside, steps[np.minimum(starts[:, None] + np.arange(width),
                                             len(steps) - 1)], 0)
    mean = gaps.sum(axis=1) / k
    dev = np.where(inside, gaps - mean[:, None], 0.0)
    sq = dev * dev
    acc = np.zeros(len(sel))
    for j in range(width):
        acc = acc + sq[:, j]  # (+ 0.0 past a user's last gap changes nothing)
    out[sel] = np.sqrt(acc / k) / mean
    return out


class FeatureRows:
    """The features of many users: the matrix (columns ``names``: :data:`SOURCE_NAMES`,
    then the BG/NBD inputs when the scorer takes them) and, on demand, one user's dict."""

    __slots__ = ("matrix", "names")

    def __init__(self, matrix: np.ndarray, names: tuple[str, ...] = SOURCE_NAMES) -> None:
        self.matrix, self.names = matrix, names

    @classmethod
    def of(cls, aggs: Sequence[Aggregates]) -> FeatureRows:
        return cls(feature_matrix(aggs))

    def with_columns(self, names: Sequence[str], values: np.ndarray) -> FeatureRows:
        return FeatureRows(np.hstack([self.matrix, values]), (*self.names, *names))

    def __len__(self) -> int:
        return len(self.matrix)

    def __getitem__(self, i: int) -> dict[str, float]:
        return dict(zip(self.names, self.matrix[i].tolist(), strict=True))

    def dicts(self) -> list[dict[str, float]]:
        names = self.names
        return [dict(zip(names, row, strict=True)) for row in self.matrix.tolist()]
