"""Time formatting for responses.

>>> rfc3339(1572566408000)
'2019-11-01T00:00:08.000Z'
>>> parse_time("2019-11-01T00:00:08Z"), parse_time("1572566408000")
(1572566408000, 1572566408000)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

from core.events import _to_ms

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=4096)
def _date(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")


def rfc3339(ms: int) -> str:
    """UTC with milliseconds (the date part cached per day: the API formats four per
    request)."""
    day, rest = divmod(ms, 86_400_000)
    sec, milli = divmod(rest, 1000)
    hour, sec = divmod(sec, 3600)
    minute, sec = divmod(sec, 60)
    return f"{_date(day)}{hour:02d}:{minute:02d}:{sec:02d}.{milli:03d}Z"


def parse_time(text: str) -> int:
    """RFC 3339 with zone, or epoch milliseconds as digits."""
    return _to_ms(int(text) if text.strip().lstrip("-").isdigit() else text)
