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


def event_schema(allowed_types: frozenset[str]) -> dict[str, Any]:
    return {
        "type": "object", "required": ["user_id", "event_type", "event_time"],
        "properties": {
            "event_id": {**_ID, "description": "Dedupe key; derived from the content "
                                               "when absent"},
            "user_id": _ID,
            "event_type": {"type": "string", "enum": sorted(allowed_types)},
            "event_time": {"anyOf": [EPOCH_MS, TIME_STRING]},
            "price": _PRICE,
            **{name: _TEXT for name in ("brand", "category", "product_id", "session_id")},
        },
    }


def events_body(allowed_types: frozenset[str], max_events: int) -> dict[str, Any]:
    """``requestBody`` schema: one event, or a list of 1..max_events events."""
    one = event_schema(allowed_types)
    return {"oneOf": [one, {"type": "array", "items": one, "minItems": 1,
                            "maxItems": max_events}]}


AS_OF: dict[str, Any] = {"anyOf": [EPOCH_MS, TIME_STRING]}
