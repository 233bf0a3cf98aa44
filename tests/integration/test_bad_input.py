"""A misbehaving producer: every malformed class lands in the DLQ with its reason; worker lives."""

from __future__ import annotations

import json
import warnings
from collections import Counter

import pytest

from stream.topics import ensure_topics
from tests.integration.conftest import http_json, read_topic

pytestmark = pytest.mark.integration

T = 1_572_566_408_000
OK = {"event_id": "ok", "user_id": "good", "event_type": "view", "event_time": T}


def body(**kw: object) -> bytes:
    return json.dumps({**OK, **kw}).encode()


BAD: list[tuple[bytes, str]] = [
    (b"this is not json", "payload:invalid_json"),
    (b"{\"event_id\": \"x\",", "payload:invalid_json"),
    (b"\xc3\x28\xa0\xa1", "payload:invalid_utf8"),
    (b'{"event_id":"e","user_id":"\xff\xfe","event_type":"view","event_time":1}',
     "payload:invalid_utf8"),
    (b"[]", "payload:not_object"),
    (b"42", "payload:not_object"),
    (b"{}" + b" " * 20000, "payload:too_large"),
    (json.dumps({"user_id": "u", "event_type": "view", "event_time": T}).encode(),
     "event_id:missing"),
    (json.dumps({"event_id": "m", "event_type": "view", "event_time": T}).encode(),
     "user_id:missing"),
    (json.dumps({"event_id": "m", "user_id": "u", "event_time": T}).encode(),
     "event_type:missing"),
    (json.dumps({"event_id": "m", "user_id": "u", "event_type": "view"}).encode(),
     "event_time:missing"),
    (body(user_id=""), "user_id:empty"),
    (body(user_id=[7]), "user_id:invalid_type"),
    (body(event_id=["a"]), "event_id:invalid_type"),
    (body(user_id="u" * 100_00), "user_id:too_long"),
    (body(brand="b" * 5000), "brand:too_long"),
    (body(category={"a": 1}), "category:invalid_type"),
    (body(event_time="tomorrow-ish"), "event_time:invalid_time"),
    (body(event_time="2019-11-01T00:00:00"), "event_time:invalid_time"),
    (body(event_time=False), "event_time:invalid_time"),
    (body(price=-1), "price:negative"),
    (body(price="12,50"), "price:invalid_type"),
    (body(event_type="teleport"), "event_type:unknown"),
]


def test_every_malformed_class_reaches_the_dlq(namespace) -> None:  # type: ignore[no-untyped-def]
    settings = namespace.settings()
    ensure_topics(settings)
    worker = namespace.start_worker()
    url = namespace.start_api()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaProducer
    prod = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    n = 0
    for i, (payload, _) in enumerate(BAD):
        prod.send(settings.events_topic, key=b"k%d" % (i % 3), value=payload)
        prod.send(settings.events_topic, key=b"good",
                  value=body(event_id=f"ok{i}", event_time=T + i * 1000))
        n += 2
    prod.send(settings.events_topic, key=None, value=b"")  # empty payload, no key
    prod.flush()
    prod.close()
    namespace.wait_consumed(n + 1, timeout=120)
    assert worker.poll() is None, "worker died on bad input"
    letters = [json.loads(v) for v in read_topic(settings.kafka_bootstrap, settings.dlq_topic,
                                                  len(BAD) + 1)]
    want = Counter(r for _, r in BAD)
    want["payload:invalid_json"] += 1
    assert Counter(d["reason"] for d in letters) == want
    by_reason = {d["reason"]: d for d in letters}
    assert "raw_b64" in by_reason["payload:invalid_utf8"]
    assert by_reason["price:negative"]["raw"] == body(price=-1).decode()
    code, status = http_json(url + "/v1/status")
    assert code == 200
    assert status["events_rejected"] == len(BAD) + 1
    assert status["rejected_by_reason"] == dict(want)
    assert status["events_applied"] == len(BAD)
    code, user = http_json(url + "/v1/users/good")
    assert code == 200 and user["features"]["n_events_30d"] == len(BAD)
