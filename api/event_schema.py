"""JSON Schema of what ``core.events.parse_event`` accepts, for the OpenAPI document.

The body of ``POST /v1/events`` and the ``as_of`` parameter are validated by the
worker's parser, not by FastAPI, so their schemas are written here to say the same:
a request the schema allows is accepted, one it forbids is refused (schemathesis
checks both directions in tests/integration/test_schemathesis.py).

The API takes the text fields (ids, brand, ...) as JSON strings only
(``api/routes/events.py``): the parser would take a number as its decimal text,
whose length no schema can bound. Two simplifications remain, both on the refusing
side of the parser's range: a time
string must lie in the years 1971-2198 (the parser takes 1970-2199 with any zone
offset; epoch milliseconds cover the whole range exactly), and a numeric ``price``
string is plain digits (Python's ``float`` also takes ``1_0`` or surrounding blanks).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.events import _MAX_MS, MAX_ID_LEN, MAX_TEXT_LEN

_LEAP = r"(19(7[26]|8[048]|9[26])|20([02468][048]|[13579][26])|21(0[48]|[2468][048]|[13579][26]))"
_YEAR = r"(19(7[1-9]|[89]\d)|20\d\d|21([0-8]\d|9[0-8]))"
_DATE = (rf"({_YEAR}-((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)"
         rf"|02-(0[1-9]|1\d|2[0-8]))|{_LEAP}-02-29)")
_TIME = r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?"
TIME_PATTERN = rf"^{_DATE}(T{_TIME}(Z|[+-]([01]\d|2[0-3]):[0-5]\d)| {_TIME} UTC)$"

TIME_STRING: dict[str, Any] = {
    "type": "string", "pattern": TIME_PATTERN,
    "description": "RFC 3339 with a zone (2019-11-01T00:00:08Z), or the public logs' "
                   "'2019-11-01 00:00:08 UTC'"}
EPOCH_MS: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": _MAX_MS - 1,
                            "description": "Epoch milliseconds"}

# not blank: pydantic-core's \S (Unicode White_Space) spelled out, as ECMA's \s differs
# (U+FEFF is blank there, U+0085 is not)
_NOT_BLANK = "[^\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LEN, "pattern": _NOT_BLANK}
_TEXT = {"anyOf": [{"type": "string", "maxLength": MAX_TEXT_LEN}, {"type": "null"}],
         "description": "Optional; empty means absent"}
_PRICE = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"},
                    {"type": "string", "pattern":
                     r"^(\d{1,100}(\.\d{0,100})?|\.\d{1,100})([eE][+-]?\d{1,2})?$|^$"}],
          "description": ">= 0 (a number, or its decimal text); optional"}


def _leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _days(n: int) -> str:
    """Two-digit days 01..n as an alternation."""
    return "|".join(f"{d:02d}" for d in range(1, n + 1))


def _dates_until(y: int, m: int, d: int) -> str:
    """Valid dates from 1971-01-01 to y-m-d inclusive (1971 <= y <= 2198)."""
    lengths = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    full = r"((0[13578]|1[02])-(0[1-9]|[12]\d|3[01])|(0[469]|11)-(0[1-9]|[12]\d|30)" \
           r"|02-(0[1-9]|1\d|2[0-8]))"
    parts = []
    before = range(1971, y)
    leap = "|".join(str(x) for x in before if _leap(x))
    if before:
        parts.append(f"({'|'.join(str(x) for x in before)})-{full}")
    if leap:
        parts.append(f"({leap})-02-29")
    feb = 29 if _leap(y) else 28
    for month in range(1, m):
        parts.append(f"{y}-{month:02d}-({_days(feb if month == 2 else lengths[month - 1])})")
    parts.append(f"{y}-{m:02d}-({_days(d)})")
    return "(" + "|".join(parts) + ")"


def event_time_schema(latest_ms: int | None) -> dict[str, Any]:
    """``event_time`` as the API accepts it now: not after ``latest_ms``
    (:func:`core.events.latest_allowed_ms`, the end of a UTC day; None: no bound).
    Epoch milliseconds are bounded exactly; a time string's date stops one day short
    of that day, so that no zone offset takes an allowed string past the bound.

    >>> import re
    >>> s = event_time_schema(1_764_633_599_999)  # the end of 2025-12-01
    >>> s["anyOf"][0]["maximum"]
    1764633599999
    >>> pat = s["anyOf"][1]["pattern"]
    >>> [bool(re.match(pat, x)) for x in ("2025-11-30T23:59:59-23:59", "2025-12-01T00:00:00Z",
    ...                                   "2024-02-29 01:00:00 UTC", "2025-02-29T00:00:00Z")]
    [True, False, True, False]
    """
    if latest_ms is None or latest_ms >= _MAX_MS:
        return {"anyOf": [EPOCH_MS, TIME_STRING]}
    last = datetime.fromtimestamp((latest_ms // 86_400_000 - 1) * 86_400, UTC)
    pattern = rf"^{_dates_until(last.year, last.month, last.day)}" \
              rf"(T{_TIME}(Z|[+-]([01]\d|2[0-3]):[0-5]\d)| {_TIME} UTC)$"
    return {"anyOf": [{**EPOCH_MS, "maximum": latest_ms}, {**TIME_STRING, "pattern": pattern}],
            "description": "Not later than the end of the UTC day of the wall clock plus "
                           "CHURN_MAX_FUTURE_SECONDS (else event_time:future)"}


def event_schema(allowed_types: frozenset[str], latest_ms: int | None = None
                 ) -> dict[str, Any]:
    return {
        "type": "object", "required": ["user_id", "event_type", "event_time"],
        "properties": {
            "event_id": {**_ID, "description": "Dedupe key; derived from the content "
                                               "when absent"},
            "user_id": _ID,
            "event_type": {"type": "string", "enum": sorted(allowed_types)},
            "event_time": event_time_schema(latest_ms),
            "price": _PRICE,
            **{name: _TEXT for name in ("brand", "category", "product_id", "session_id")},
        },
    }


def events_body(allowed_types: frozenset[str], max_events: int,
                latest_ms: int | None = None) -> dict[str, Any]:
    """``requestBody`` schema: one event, or a list of 1..max_events events."""
    one = event_schema(allowed_types, latest_ms)
    return {"oneOf": [one, {"type": "array", "items": one, "minItems": 1,
                            "maxItems": max_events}]}


AS_OF: dict[str, Any] = {"anyOf": [EPOCH_MS, TIME_STRING]}
