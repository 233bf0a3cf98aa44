"""The event contract: every malformed class gets its machine-readable reason."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.events import Event, Rejected, derive_event_id, fingerprint, parse_event

GOOD = {"event_id": "e1", "user_id": "u1", "event_type": "view",
        "event_time": "2019-11-01T00:00:08Z"}


def raw(**changes: object) -> bytes:
    body = {**GOOD, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


@pytest.mark.parametrize(("payload", "reason"), [
    (b"not json", "payload:invalid_json"),
    (b"", "payload:invalid_json"),
    (b'{"event_id": "e1", ', "payload:invalid_json"),
    (b"\xff\xfe\x00garbage", "payload:invalid_utf8"),
    (b'{"event_id":"e","user_id":"\xe9","event_type":"view","event_time":1}',
     "payload:invalid_utf8"),
    (b"[1, 2]", "payload:not_object"),
    (b'"a string"', "payload:not_object"),
    (b"null", "payload:not_object"),
    (b"x" * 20000, "payload:too_large"),
    (raw(event_id=...), "event_id:missing"),
    (raw(user_id=...), "user_id:missing"),
    (raw(event_type=...), "event_type:missing"),
    (raw(event_time=...), "event_time:missing"),
    (raw(user_id=""), "user_id:empty"),
    (raw(user_id="  "), "user_id:empty"),
    (raw(user_id=["a"]), "user_id:invalid_type"),
    (raw(user_id=True), "user_id:invalid_type"),
    (raw(user_id={"a": 1}), "user_id:invalid_type"),
    (raw(user_id="u" * 129), "user_id:too_long"),
    (raw(event_id="e" * 1000), "event_id:too_long"),
    (raw(brand="b" * 257), "brand:too_long"),
    (raw(brand=["x"]), "brand:invalid_type"),
    (raw(event_type="wishlist"), "event_type:unknown"),
    (raw(event_time="yesterday"), "event_time:invalid_time"),
    (raw(event_time="2019-13-45T00:00:00Z"), "event_time:invalid_time"),
    (raw(event_time="2019-11-01T00:00:08"), "event_time:invalid_time"),  # no zone
    (raw(event_time=""), "event_time:invalid_time"),
    (raw(event_time=1.5), "event_time:invalid_time"),
    (raw(event_time=True), "event_time:invalid_time"),
    (raw(event_time=-5), "event_time:invalid_time"),
    (raw(event_time=10**16), "event_time:invalid_time"),
    (raw(event_time=None), "event_time:invalid_time"),
    (raw(price=-0.01), "price:negative"),
    (raw(price="-3"), "price:negative"),
    (raw(price="abc"), "price:invalid_type"),
    (raw(price="NaN"), "price:invalid_type"),
    (raw(price="inf"), "price:invalid_type"),
    (raw(price=[1]), "price:invalid_type"),
    (raw(price=True), "price:invalid_type"),
])
def test_rejections(payload: bytes, reason: str) -> None:
    assert parse_event(payload) == Rejected(reason)


@pytest.mark.parametrize(("value", "ms"), [
    ("2019-11-01 00:00:08 UTC", 1572566408000),
    ("2019-11-01T00:00:08Z", 1572566408000),
    ("2019-11-01T00:00:08.123456Z", 1572566408123),
    ("2019-11-01T01:00:08+01:00", 1572566408000),
    ("2019-10-31T19:00:08-05:00", 1572566408000),
    (1572566408000, 1572566408000),
    (1572566408000.0, 1572566408000),
])
def test_times(value: object, ms: int) -> None:
    ev = parse_event(raw(event_time=value))
    assert isinstance(ev, Event) and ev.time_ms == ms


def test_optional_fields_and_extras() -> None:
    ev = parse_event(raw(price="12.50", brand="", product_id=123, extra={"x": 1}))
    assert isinstance(ev, Event)
    assert (ev.price, ev.brand, ev.product_id) == (12.5, None, "123")
    assert parse_event(raw(price=None)).price is None  # type: ignore[union-attr]
    numeric = parse_event(raw(user_id=512475445, event_id=7))
    assert isinstance(numeric, Event) and (numeric.user_id, numeric.event_id) == ("512475445", "7")
    custom = parse_event(raw(event_type="wishlist"), allowed_types=frozenset({"wishlist"}))
    assert isinstance(custom, Event)


def test_derived_ids_are_deterministic() -> None:
    body = b'{"user_id":"u","event_type":"view","event_time":1}'
    a, b = parse_event(body, derive_id=True), parse_event(body, derive_id=True)
    assert isinstance(a, Event) and isinstance(b, Event)
    assert a.event_id == b.event_id == derive_event_id(body)
    other = parse_event(body.replace(b":1}", b":2}"), derive_id=True)
    assert isinstance(other, Event) and other.event_id != a.event_id
    assert len(fingerprint("x")) == 8 and fingerprint("x") != fingerprint("y")


events = st.builds(
    Event, event_id=st.text(min_size=1, max_size=20).filter(str.strip),
    user_id=st.text(min_size=1, max_size=20).filter(str.strip),
    event_type=st.sampled_from(["view", "cart", "remove_from_cart", "purchase"]),
    event_time=st.integers(0, 7_000_000_000_000),
    price=st.none() | st.floats(0, 1e9, allow_nan=False),
    brand=st.none() | st.text(min_size=1, max_size=30),
)


@given(events)
def test_wire_form_round_trips(ev: Event) -> None:
    assert parse_event(ev.to_json()) == ev
