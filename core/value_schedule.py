"""When the customer-value fit runs and which fit serves, in event time.

A fit runs at every daily anchor whose UTC day number ``D`` is a multiple of
``CHURN_VALUE_FIT_EVERY_DAYS`` (``every``), on every customer's summary as of that anchor
(nothing later: the anchor runs before any later event is applied). It serves from the
anchor ``D + CHURN_VALUE_FIT_LAG_DAYS`` (``lag``) on: the live learner needs every
partition's summaries of ``D`` before it can fit, so the lag gives the partitions time to
reach ``D`` and the learner time to fit, and a replay serves the same fits at any speed.
``churnstream evaluate`` follows the same schedule. A skipped fit (too few customers)
leaves the previous one serving.

>>> every, lag = 7, 7
>>> [d for d in range(20_000, 20_016) if is_fit_day(d, every)]
[20006, 20013]
>>> serving_fit_day(20_012, every, lag), serving_fit_day(20_013, every, lag)
(19999, 20006)
>>> pick({19_999: "a", 20_006: "b"}, 20_014, every, lag)
'b'
>>> pick({19_999: "a"}, 20_014, every, lag)  # 20006 was skipped: the older one serves
'a'
>>> pick({}, 20_014, every, lag) is None
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np

from core.bgnbd import BGNBD
from core.features import DAY_MS, Aggregates
from core.model import VALUE_INPUT_NAMES
from core.value import bgnbd_inputs, summary_arrays

T = TypeVar("T")


def is_fit_day(day: int, every: int) -> bool:
    """Whether the anchor of UTC day ``day`` takes the summaries of a fit."""
    return every > 0 and day % every == 0


def serving_fit_day(day: int, every: int, lag: int) -> int:
    """The fit day whose fit serves at the anchor of ``day`` (it may have been skipped)."""
    return (day - lag) // every * every


def pick(fits: Mapping[int, T], day: int, every: int, lag: int) -> T | None:
    """The fit serving on ``day`` among ``fits`` (fit day -> fit): the newest whose day is
    at most :func:`serving_fit_day`; None before the first."""
    last = serving_fit_day(day, every, lag)
    days = [d for d in fits if d <= last]
    return fits[max(days)] if days else None


def inputs_by_day(serving: Callable[[int], BGNBD | None], horizon_days: float,
                  aggs: Sequence[Aggregates]) -> np.ndarray:
    """The BG/NBD inputs (``core.value.bgnbd_inputs``) of each aggregate, under the fit
    that ``serving`` gives for its own reference day (``agg.now_ms``): a batch, a sweep
    or an anchor can mix days, and each user gets the fit of theirs."""
    if not aggs:
        return bgnbd_inputs(serving(0), horizon_days, *summary_arrays(aggs))
    by_day: dict[int, BGNBD | None] = {}  # a batch's users share a few days
    fits = []
    for a in aggs:
        d = a.now_ms // DAY_MS
        if d not in by_day:
            by_day[d] = serving(d)
        fits.append(by_day[d])
    if all(f is fits[0] for f in fits):
        return bgnbd_inputs(fits[0], horizon_days, *summary_arrays(aggs))
    out = np.empty((len(aggs), len(VALUE_INPUT_NAMES)))
    for f in {id(f): f for f in fits}.values():
        idx = [i for i, g in enumerate(fits) if g is f]
        out[idx] = bgnbd_inputs(f, horizon_days, *summary_arrays([aggs[i] for i in idx]))
    return out
