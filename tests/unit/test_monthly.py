"""core/monthly.py against brute force: the counters kept one event at a time equal
those counted from every user's set of active months, for any arrival order."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from core.monthly import (
    MASK_MONTHS,
    Marks,
    add,
    mark,
    month_label,
    month_of_day,
    month_start_ms,
    table,
)
from tests.reference import monthly_counters


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from("abcde"), st.integers(0, 40)), max_size=80))
def test_streamed_counters_equal_brute_force(events: list[tuple[str, int]]) -> None:
    marks: dict[str, Marks] = {}
    counters: dict[str, int] = {}
    months_of: dict[str, set[int]] = {}
    for user, month in events:
        old = marks.get(user)
        if old is not None and month <= max(old.newest, month) - MASK_MONTHS:
            continue  # beyond the mask: never counted (the 30-day horizon is far shorter)
        marks[user], changes = mark(old, month)
        add(counters, changes)
        months_of.setdefault(user, set()).add(month)
    assert {k: v for k, v in counters.items() if v} == monthly_counters(months_of)
    assert table(counters) == table(monthly_counters(months_of))


def test_calendar() -> None:
    for d in range(-800, 30_000, 3):
        day = dt.date(1970, 1, 1) + dt.timedelta(days=d)
        m = (day.year - 1970) * 12 + day.month - 1
        assert month_of_day(d) == m and month_label(m) == f"{day.year:04d}-{day.month:02d}"
        assert month_start_ms(m) <= d * 86_400_000 < month_start_ms(m + 1)
