"""The monthly picture a retention team reports, kept exactly as events stream in.

Per calendar month ``M`` (UTC, event time), over the events the features count (every
valid, non-duplicate event within the 30-day horizon of its user's newest event,
docs/design.md section 4):

- ``active(M)``: customers with an event in ``M``;
- ``retained(M)``: active in ``M - 1`` and in ``M``;
- ``cohort(m, k)``: customers whose first counted event is in month ``m`` and who are
  active in month ``m + k`` (``k < COHORT_MONTHS``); ``new(m) = cohort(m, 0)``.

The rest follows: ``returning(M) = active(M) - new(M) - retained(M)`` (back after a month
or more away), ``churned(M) = active(M - 1) - retained(M)`` (active last month, not this
one), ``churn rate(M) = churned(M) / active(M - 1)``.

Each user carries :class:`Marks` (6 bytes in Redis: the cohort month, the newest active
month, a 16-bit mask of the active months before it); :func:`mark` returns the counter
changes of one counted event, which only happen the first time a user is seen in a month
(a late event may set an earlier month, or move the user's cohort earlier). The Redis
script ``state/lua/apply_event.lua`` does the same arithmetic.

>>> nov, dec = month_of_ms(1_572_566_400_000), month_of_ms(1_575_158_400_000)
>>> month_label(nov), month_label(dec)
('2019-11', '2019-12')
>>> m, inc = mark(None, nov)
>>> inc
[('a', 598, 1), ('c', 598, 0, 1)]
>>> m, inc = mark(m, dec)
>>> inc
[('a', 599, 1), ('r', 599, 1), ('c', 598, 1, 1)]
>>> mark(m, dec)[1]  # already active in December: nothing changes
[]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

DAY_MS = 86_400_000
MASK_MONTHS = 16
COHORT_MONTHS = 12
_EPOCH_DAYS_0000 = 719_468  # days from 0000-03-01 to 1970-01-01 (civil_from_days)

Counter = tuple[str, int, int] | tuple[str, int, int, int]  # (kind, month[, k], delta)


class Marks(NamedTuple):
    first: int  # the cohort: month of the user's first counted event
    newest: int  # the newest month with a counted event
    mask: int  # bit j: active in month ``newest - j`` (j < MASK_MONTHS)


def month_of_day(day: int) -> int:
    """Months since 1970-01 of a UTC day number (H. Hinnant's civil_from_days).

    >>> month_of_day(0), month_of_day(31), month_of_day(-1), month_of_day(18_262)
    (0, 1, -1, 600)
    """
    z = day + _EPOCH_DAYS_0000
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    month = mp + 3 if mp < 10 else mp - 9  # 1..12
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return (year - 1970) * 12 + month - 1


def month_of_ms(t_ms: int) -> int:
    return month_of_day(t_ms // DAY_MS)


def month_label(month: int) -> str:
    """``YYYY-MM`` of a month index."""
    return f"{1970 + month // 12:04d}-{month % 12 + 1:02d}"


def month_start_ms(month: int) -> int:
    """Epoch ms of the first instant of a month index.

    >>> month_start_ms(598) == 1_572_566_400_000
    True
    """
    y, m = 1970 + month // 12, month % 12 + 1
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return (era * 146_097 + doe - _EPOCH_DAYS_0000) * DAY_MS


def mark(marks: Marks | None, month: int) -> tuple[Marks, list[Counter]]:
    """The user's marks after a counted event in ``month``, and the counter changes."""
    if marks is None:
        return Marks(month, month, 1), [("a", month, 1), ("c", month, 0, 1)]
    first, newest, mask = marks
    if month > newest:
        shift = month - newest
        mask = (mask << shift) & 0xFFFF if shift < MASK_MONTHS else 0
        newest = month
    j = newest - month
    if j >= MASK_MONTHS - 1 or mask >> j & 1:
        # already active then, or too old: the oldest bit only remembers the month
        # before the next one, which retention needs; a month is counted while its
        # own month before is still in the mask
        return Marks(first, newest, mask), []
    mask |= 1 << j
    inc: list[Counter] = [("a", month, 1)]
    if mask >> (j + 1) & 1:
        inc.append(("r", month, 1))  # active the month before
    if j >= 1 and mask >> (j - 1) & 1:
        inc.append(("r", month + 1, 1))  # the month after now counts as retained
    if month < first:  # a late event before the cohort month: the user's cohort moves
        for i in range(MASK_MONTHS):
            if i != j and mask >> i & 1:
                m = newest - i
                if m - first < COHORT_MONTHS:
                    inc.append(("c", first, m - first, -1))
                if m - month < COHORT_MONTHS:
                    inc.append(("c", month, m - month, 1))
        first = month
    if month - first < COHORT_MONTHS:
        inc.append(("c", first, month - first, 1))
    return Marks(first, newest, mask), inc


def field(c: Counter) -> str:
    """The Redis hash field of a counter: ``a:<m>``, ``r:<m>``, ``c:<m>:<k>``."""
    return ":".join(str(x) for x in c[:-1])


def add(counters: dict[str, int], changes: Iterable[Counter]) -> None:
    for c in changes:
        k = field(c)
        counters[k] = counters.get(k, 0) + c[-1]


class MonthRow(NamedTuple):
    month: str
    active: int
    new: int
    retained: int
    returning: int
    churned: int
    churn_rate: float | None  # None when nobody was active the month before


def table(counters: Mapping[str, int]) -> tuple[list[MonthRow], dict[str, list[int]]]:
    """The monthly rows (oldest first, every month from the first to the last seen) and
    the cohort table (cohort label -> customers active k months later, k = 0, 1, ...).

    >>> rows, cohorts = table({"a:598": 3, "c:598:0": 3, "a:599": 2, "r:599": 1,
    ...                        "c:599:0": 1, "c:598:1": 1})
    >>> [(r.month, r.active, r.new, r.retained, r.returning, r.churned) for r in rows]
    [('2019-11', 3, 3, 0, 0, 0), ('2019-12', 2, 1, 1, 0, 2)]
    >>> rows[1].churn_rate, cohorts
    (0.6666666666666666, {'2019-11': [3, 1], '2019-12': [1]})
    """
    active: dict[int, int] = {}
    retained: dict[int, int] = {}
    cohort: dict[int, dict[int, int]] = {}
    for key, n in counters.items():
        if not n:  # a cohort a user moved out of, say
            continue
        kind, *rest = key.split(":")
        if kind == "a":
            active[int(rest[0])] = n
        elif kind == "r":
            retained[int(rest[0])] = n
        elif kind == "c":
            cohort.setdefault(int(rest[0]), {})[int(rest[1])] = n
    months = set(active) | set(retained) | set(cohort)
    if not months:
        return [], {}
    rows = []
    for m in range(min(months), max(months) + 1):
        a, new, r = active.get(m, 0), cohort.get(m, {}).get(0, 0), retained.get(m, 0)
        before = active.get(m - 1, 0)
        churned = before - r
        rows.append(MonthRow(month_label(m), a, new, r, a - new - r, churned,
                             churned / before if before else None))
    last = max(months)
    cohorts = {month_label(m): [ks.get(k, 0) for k in range(min(COHORT_MONTHS, last - m + 1))]
               for m, ks in sorted(cohort.items())}
    return rows, cohorts
