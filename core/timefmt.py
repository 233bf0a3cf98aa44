"""Time formatting for responses.

>>> rfc3339(1572566408000)
'2019-11-01T00:00:08.000Z'
>>> parse_time("2019-11-01T00:00:08Z"), parse_time("1572566408000")
(1572566408000, 1572566408000)
"""

from __future__ import annotations

from datetime import UTC, datetime

from core.events import _to_ms


def rfc3339(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC).replace(
        microsecond=(ms % 1000) * 1000)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_time(text: str) -> int:
    """RFC 3339 with zone, or epoch milliseconds as digits."""
    return _to_ms(int(text) if text.strip().lstrip("-").isdigit() else text)
