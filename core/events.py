"""The event contract (docs/design.md section 3): parsing, validation and reasons.

One function, :func:`parse_event`, turns the raw bytes of a Kafka message (or a
replayed row) into a validated :class:`Event` or a machine-readable rejection
reason. The worker, the replay tool and the HTTP API all use it, so an event is
valid in one place exactly when it is valid in the others.

>>> ev = parse_event(b'{"event_id":"e1","user_id":"u1","event_type":"view",'
...                  b'"event_time":"2019-11-01 00:00:08 UTC","price":"1.5"}')
>>> ev.user_id, ev.time_ms, ev.price, ev.brand
('u1', 1572566408000, 1.5, None)
>>> parse_event(b'{"user_id":"u1"}')
Rejected(reason='event_id:missing')
>>> parse_event(b'\\xff\\xfe')
Rejected(reason='payload:invalid_utf8')
>>> parse_event(b'{"event_id":"e","user_id":"u","event_type":"view","event_time":1,"price":-2}')
Rejected(reason='price:negative')
>>> parse_event(b'{"event_id":"e","user_id":"u","event_type":"view","event_time":9}', latest_ms=8)
Rejected(reason='event_time:future')
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

DEFAULT_EVENT_TYPES: frozenset[str] = frozenset({"view", "cart", "remove_from_cart", "purchase"})
MAX_PAYLOAD_BYTES = 16 * 1024
MAX_ID_LEN = 128
MAX_TEXT_LEN = 256
# event times outside [1970, 2200) are rejected as nonsense
_MIN_MS = 0
_MAX_MS = 7_258_118_400_000
_DAY_MS = 86_400_000


class Rejected(NamedTuple):
    """A payload that failed validation, with a machine-readable reason."""

    reason: str


def _to_ms(value: Any) -> int:
    """Event time as integer epoch milliseconds (UTC).

    Accepts epoch milliseconds (int, or float with no fraction), or an RFC 3339
    string with a zone; the public logs' ``2019-11-01 00:00:08 UTC`` form is
    accepted as well. Sub-millisecond digits are truncated.
    """
    if isinstance(value, bool):
        raise ValueError("invalid_time")
    if isinstance(value, int):
        ms = value
    elif isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise ValueError("invalid_time")
        ms = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(" UTC"):
            text = text[:-4] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("invalid_time") from None
        if dt.tzinfo is None:
            raise ValueError("invalid_time")
        delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
        ms = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    else:
        raise ValueError("invalid_time")
    if not _MIN_MS <= ms < _MAX_MS:
        raise ValueError("invalid_time")
    return ms


def _price(value: Any) -> Any:
    """Numbers and numeric strings; booleans are not prices."""
    if isinstance(value, bool):
        raise ValueError("invalid_type")
    if isinstance(value, str):
        if not value:
            return None
        try:
            return float(value)
        except ValueError:
            raise ValueError("invalid_type") from None
    return value


def _blank(value: Any) -> Any:
    return None if value == "" else value


_Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LEN, pattern=r"\S")]
_Text = Annotated[str | None, StringConstraints(max_length=MAX_TEXT_LEN), BeforeValidator(_blank)]


class Event(BaseModel):
    """A validated user-activity event. ``time_ms`` is epoch milliseconds (UTC)."""

    # constraints are checked in pydantic-core (Rust); only the time needs Python
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True,
                              coerce_numbers_to_str=True)

    event_id: _Id
    user_id: _Id
    event_type: _Id
    time_ms: Annotated[int, BeforeValidator(_to_ms)] = Field(alias="event_time")
    price: Annotated[float | None, Field(ge=0, allow_inf_nan=False),
                     BeforeValidator(_price)] = None
    brand: _Text = None  # "" means absent, for every optional text
    category: _Text = None
    product_id: _Text = None
    session_id: _Text = None

    def to_json(self) -> bytes:
        """Canonical wire form (event_time as epoch milliseconds)."""
        body = {"event_id": self.event_id, "user_id": self.user_id,
                "event_type": self.event_type, "event_time": self.time_ms}
        for name in ("price", "brand", "category", "product_id", "session_id"):
            val = getattr(self, name)
            if val is not None:
                body[name] = val
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


_VALUE_ERROR_CODES = {"invalid_time", "invalid_type", "negative", "too_long", "empty"}
_TYPE_CODES = {"string_too_long": "too_long", "string_too_short": "empty",
               "string_pattern_mismatch": "empty", "greater_than_equal": "negative"}


def _reason(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    etype = err["type"]
    loc = err.get("loc") or ()
    field = str(loc[0]) if loc else "payload"
    if etype == "json_invalid":
        return "payload:invalid_json"
    if etype in ("model_type", "model_attributes_type", "dict_type"):
        return "payload:not_object"
    if etype == "missing":
        return f"{field}:missing"
    if etype in _TYPE_CODES:
        return f"{field}:{_TYPE_CODES[etype]}"
    if etype == "value_error":
        ctx = err.get("ctx") or {}
        code = str(ctx.get("error", "invalid"))
        return f"{field}:{code if code in _VALUE_ERROR_CODES else 'invalid'}"
    return f"{field}:invalid_type"


def parse_event(raw: bytes, allowed_types: frozenset[str] = DEFAULT_EVENT_TYPES,
                derive_id: bool = False, latest_ms: int | None = None) -> Event | Rejected:
    """Validate raw JSON bytes against the event contract.

    With ``derive_id`` a missing ``event_id`` is derived from the raw bytes
    (:func:`derive_event_id`), as for rows of a source file. An event later than
    ``latest_ms`` (the wall clock plus ``CHURN_MAX_FUTURE_SECONDS``, see
    :func:`latest_allowed_ms`) is ``event_time:future``.
    """
    if len(raw) > MAX_PAYLOAD_BYTES:
        return Rejected("payload:too_large")
    try:
        event = Event.model_validate_json(raw)
    except ValidationError as exc:
        reason = _reason(exc)
        if reason == "payload:invalid_json" and not _is_utf8(raw):
            return Rejected("payload:invalid_utf8")
        if reason == "event_id:missing" and derive_id:
            derived = _parse_with_derived_id(raw, allowed_types)
            if isinstance(derived, Event) and latest_ms is not None \
                    and derived.time_ms > latest_ms:
                return FUTURE
            return derived
        return Rejected(reason)
    if event.event_type not in allowed_types:
        return Rejected("event_type:unknown")
    if latest_ms is not None and event.time_ms > latest_ms:
        return FUTURE
    return event


FUTURE = Rejected("event_time:future")


def latest_allowed_ms(max_future_seconds: float, wall_s: float | None = None) -> int | None:
    """The latest event time accepted now: the end of the UTC day that holds the wall
    clock plus the tolerance (None: no bound, a negative tolerance). Whole days, so the
    bound moves once a day and the API's OpenAPI document can state it exactly.

    >>> from datetime import datetime
    >>> noon = datetime.fromisoformat("2026-12-01T12:00:00+00:00").timestamp()
    >>> latest_allowed_ms(86_400, wall_s=noon) == int(noon * 1000) + 36 * 3_600_000 - 1
    True
    """
    if max_future_seconds < 0:
        return None
    ahead = int(((time.time() if wall_s is None else wall_s) + max_future_seconds) * 1000)
    return (ahead // _DAY_MS + 1) * _DAY_MS - 1


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _parse_with_derived_id(raw: bytes, allowed_types: frozenset[str]) -> Event | Rejected:
    body = json.loads(raw)
    body["event_id"] = derive_event_id(raw)
    try:
        event = Event.model_validate(body)
    except ValidationError as exc:
        return Rejected(_reason(exc))
    if event.event_type not in allowed_types:
        return Rejected("event_type:unknown")
    return event


def derive_event_id(raw: bytes) -> str:
    """Deterministic event id for a source row: identical rows get the same id.

    >>> derive_event_id(b"a,b,c") == derive_event_id(b"a,b,c")
    True
    >>> len(derive_event_id(b"x"))
    32
    """
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def fingerprint(event_id: str) -> bytes:
    """8-byte dedupe fingerprint of an event id (collisions ~ n/2**64 per user)."""
    return hashlib.blake2b(event_id.encode(), digest_size=8).digest()
