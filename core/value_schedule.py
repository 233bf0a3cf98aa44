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

from collections.abc import Mapping
from typing import TypeVar

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
