"""Customer value inside ``churnstream evaluate``: a BG/NBD refit on the users' purchase
summaries as of an anchor, the BG/NBD expected-purchases baseline, and BG/NBD inputs for
the ``<pipeline>+value`` variants of the online model (``CHURN_MODEL_VALUE_INPUTS``).

Summaries use only purchase days at or before the anchor's day (the state holds nothing
later: the evaluator applies the log in order). A user who has not purchased counts as
a customer born at the first event with no purchase (x = 0, t_x = 0, T = days since the
first event), so every active user gets a number; ``bg_customer`` tells the model which
(as :func:`core.value.summary_arrays` does for the live path).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core import bgnbd
from core.apply import MemoryUser
from core.bgnbd import BGNBD
from core.features import DAY_MS, Aggregates
from core.model import VALUE_INPUT_NAMES
from core.value import bgnbd_inputs, summary_arrays
from core.value_schedule import is_fit_day, pick

SUFFIX = "+value"


Summaries = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def summaries(users: Sequence[MemoryUser], anchor_ms: int) -> Summaries:
    """(customer flag, x, t_x, T) in whole days at ``anchor_ms`` for each user: what
    :func:`core.value.summary_arrays` gives from window aggregates (a unit test holds
    them equal), read straight from the states, because the weekly refit covers every
    user and window aggregates would compute 30-day windows it does not need."""
    today = anchor_ms // DAY_MS
    n = len(users)
    cust, x, t_x, T = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    for i, mu in enumerate(users):
        days = mu.state.purchase_days
        if days:
            first = min(days)
            cust[i], x[i], t_x[i], T[i] = 1.0, len(days) - 1, max(days) - first, today - first
        else:
            T[i] = today - mu.state.first_ms // DAY_MS
    return cust, x, t_x, T


class ValueTrack:
    """BG/NBD parameters on the live path's event-time schedule (core/value_schedule.py):
    fitted at every fit day's anchor on all users' summaries (compressed rows, warm-started
    from the previous fit, like ``stream.jobs.value_fit``), serving from ``lag_days`` later; or
    ``fixed`` ones that never change (what-if runs)."""

    def __init__(self, horizon_days: int, every_days: int = 7, fixed: BGNBD | None = None,
                 lag_days: int = 7, min_customers: int = 100,
                 users: dict[str, MemoryUser] | None = None) -> None:
        self.horizon = horizon_days
        self.users = users if users is not None else {}  # whom a fit day fits on
        self.every, self.lag, self.min_customers = every_days, lag_days, min_customers
        self.params: BGNBD | None = fixed
        self.fixed = fixed is not None
        self.made: dict[int, BGNBD] = {}  # fit day -> params (the served ones)
        self.last: BGNBD | None = None  # the newest fit, served or not
        self.fits = 0

    def maybe_fit(self, users: dict[str, MemoryUser], anchor_ms: int) -> None:
        """At each daily anchor: fit on a fit day, then serve this day's fit."""
        day = anchor_ms // DAY_MS
        if self.fixed or self.every <= 0:
            return
        if is_fit_day(day, self.every):
            cust, x, t_x, T = summaries(list(users.values()), anchor_ms)
            keep = cust > 0
            if keep.sum() >= self.min_customers:
                rows, weight = np.unique(np.stack([x[keep], t_x[keep], T[keep]], axis=1),
                                         axis=0, return_counts=True)
                # warm-started from the previous fit; every fit serves (as
                # stream.jobs.value_fit; one without drop-out as the NBD model)
                m = bgnbd.fit(rows[:, 0], rows[:, 1], rows[:, 2],
                              weights=weight.astype(np.float64), start=self.last or bgnbd.START)
                self.last = m
                self.fits += 1
                self.made[day] = m
        self.params = pick(self.made, day, self.every, self.lag)

    # --- stream.anchors.ValueSource: what the shared anchors ask of the value fits --
    async def at_anchor(self, partition: int, anchor_ms: int) -> None:
        self.maybe_fit(self.users, anchor_ms)

    def inputs(self, aggs: list[Aggregates]) -> np.ndarray:
        """The BG/NBD inputs (VALUE_INPUT_NAMES columns) under the fit serving now."""
        return bgnbd_inputs(self.params, self.horizon, *summary_arrays(aggs))

    def expected(self, sums: Summaries) -> np.ndarray | None:
        """The BG/NBD baseline: E[purchase days in the next H days] per user of
        :func:`summaries` under the newest fit made, whether or not it identified drop-out
        and without the serving lag (what a BG/NBD library refitted weekly would give;
        None before the first fit; the fixed fit in what-if runs)."""
        m = self.params if self.fixed else self.last
        if m is None:
            return None
        _, x, t_x, T = sums
        return np.asarray(bgnbd.expected_purchases(m, self.horizon, x, t_x, T))

    def extras(self, sums: Summaries) -> list[dict[str, float]]:
        """The model's BG/NBD inputs per user (neutral before the first fit): the live
        path's :func:`core.value.bgnbd_inputs`."""
        rows = bgnbd_inputs(self.params, self.horizon, *sums).tolist()
        return [dict(zip(VALUE_INPUT_NAMES, row, strict=True)) for row in rows]
