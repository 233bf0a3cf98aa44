"""Hostile records and a dying agent: dead letters, never a stalled worker.

Real Tansu + Redis + worker processes. A record that cannot be an event (a tombstone,
a null key, any bytes at all) is a dead letter with its reason and nothing else is
lost; an agent that dies anyway ends the worker process with status 70 (so a
supervisor restarts it), and a stop is bounded even while Redis is unreachable.
"""

from __future__ import annotations

import json
import random
import signal
import time
import warnings
from collections import Counter

import pytest

from core.events import Rejected, parse_event
from services.redis_server import RedisServer
from stream.topics import ensure_topics
from tests.integration.conftest import http_json, read_topic, wait_until

pytestmark = pytest.mark.integration

T = 1_572_566_408_000


def good(i: int, user: str = "good") -> bytes:
    return json.dumps({"event_id": f"g{i}", "user_id": user, "event_type": "view",
                       "event_time": T + i * 1000}).encode()


def producer(bootstrap: str):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaProducer
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all")


def random_payloads(n: int, seed: int = 13) -> list[bytes]:
    rnd = random.Random(seed)
    out = [bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 300))) for _ in range(n)]
    # near misses: JSON-ish fragments, valid JSON of the wrong shape
    out += [b"{", b"null", b"true", b'{"event_id":', b'"text"', b"[1,2", b"\x00" * 40]
    return out


def test_tombstones_null_keys_and_random_bytes_are_dead_letters(namespace) -> None:  # type: ignore[no-untyped-def]
    settings = namespace.settings()
    ensure_topics(settings)
    worker = namespace.start_worker()
    url = namespace.start_api()
    prod = producer(settings.kafka_bootstrap)
    junk = random_payloads(200)
    want: Counter[str] = Counter()
    sent = 0
    for i, payload in enumerate(junk):
        if i % 4 == 0:  # a tombstone, keyed like a real user's events
            prod.send(settings.events_topic, key=b"good", value=None)
            want["payload:tombstone"] += 1
        key = None if i % 2 else b"\xff\xfe" + bytes([i % 256])  # null and non-UTF-8 keys
        prod.send(settings.events_topic, key=key, value=payload)
        ev = parse_event(payload, settings.allowed_types())
        assert isinstance(ev, Rejected), payload
        want[ev.reason] += 1
        prod.send(settings.events_topic, key=b"good", value=good(i))
        sent += 1
    prod.flush()
    prod.close()
    bad = sum(want.values())
    namespace.wait_consumed(sent + bad, timeout=120)
    assert worker.poll() is None, "worker died on hostile input"
    letters = [json.loads(v) for v in read_topic(settings.kafka_bootstrap, settings.dlq_topic, bad)]
    assert Counter(d["reason"] for d in letters) == want
    stones = [d for d in letters if d["reason"] == "payload:tombstone"]
    assert all(d["raw"] is None and d["key"] == "good" for d in stones)
    assert any("key_b64" in d for d in letters)
    code, status = http_json(url + "/v1/status")
    assert code == 200 and status["events_rejected"] == bad
    assert status["rejected_by_reason"] == dict(want)
    code, user = http_json(url + "/v1/users/good")
    assert code == 200 and user["features"]["n_events_30d"] == sent  # nothing else lost


def test_a_crashed_agent_ends_the_worker_and_nothing_is_lost(namespace) -> None:  # type: ignore[no-untyped-def]
    settings = namespace.settings()
    ensure_topics(settings)
    worker = namespace.start_worker()
    url = namespace.start_api()
    prod = producer(settings.kafka_bootstrap)
    prod.send(settings.events_topic, key=b"u", value=good(0, "u"))
    prod.flush()
    namespace.wait_consumed(1, timeout=60)
    assert http_json(url + "/readyz")[0] == 200
    r = namespace.redis()
    stats_key = f"t{namespace.name}:stats"
    saved = r.hgetall(stats_key)
    r.delete(stats_key)
    r.set(stats_key, "not a hash")  # every batch now fails with WRONGTYPE: not transient
    prod.send(settings.events_topic, key=b"u", value=good(1, "u"))
    prod.flush()
    started = time.monotonic()
    code = worker.wait(20)
    took = time.monotonic() - started
    assert code == 70, f"exit status {code}"
    assert took < 10, f"took {took:.1f}s to exit after the crash"
    print(f"crashed worker exited 70 {took:.2f}s after the poisoned batch was sent")
    log = namespace.logs[0].read_text()
    assert "apply_events crashed (ResponseError" in log or "crashed (ReplyError" in log, log[-2000:]
    code, ready = http_json(url + "/readyz")
    assert code == 503 and ready["detail"]["error"] == "worker_crashed", ready
    assert "WRONGTYPE" in ready["checks"]["workers"]
    code, body = http_json(url + "/v1/status")  # the broken key: JSON, not a plain 500
    assert code == 500 and body["detail"]["error"] == "redis_error", body
    # repaired, restarted: the second event is there exactly once, and the API is ready
    r.delete(stats_key)
    r.hset(stats_key, mapping=saved)
    code, status = http_json(url + "/v1/status")
    assert [w["state"] for w in status["workers"]] == ["crashed"]
    namespace.start_worker()
    prod.send(settings.events_topic, key=b"u", value=good(2, "u"))
    prod.flush()
    prod.close()
    wait_until(lambda: http_json(url + "/readyz")[0] == 200, 30, "a new worker running")

    def three() -> bool:
        code, user = http_json(url + "/v1/users/u")
        return code == 200 and user["features"]["n_events_30d"] == 3

    wait_until(three, 60, "all three events applied")


def test_sigterm_stops_a_worker_stuck_on_an_unreachable_redis(namespace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    redis_srv = RedisServer(workdir=str(tmp_path)).start()
    try:
        namespace.extra_env.update(CHURN_REDIS_URL=redis_srv.url, CHURN_SHUTDOWN_TIMEOUT="4")
        settings = namespace.settings()
        ensure_topics(settings)
        worker = namespace.start_worker()
        prod = producer(settings.kafka_bootstrap)
        prod.send(settings.events_topic, key=b"u", value=good(0, "u"))
        prod.flush()
        namespace.wait_consumed(1, timeout=60)
    finally:
        redis_srv.stop()
    prod.send(settings.events_topic, key=b"u", value=good(1, "u"))  # retried for ever
    prod.flush()
    prod.close()
    wait_until(lambda: "batch not applied" in namespace.logs[-1].read_text(), 30,
               "the worker retrying against the dead Redis")
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    worker.wait(20)
    took = time.monotonic() - started
    assert took < 10, f"SIGTERM took {took:.1f}s"
    print(f"SIGTERM with a batch retrying against a dead Redis: exited {worker.returncode} "
          f"after {took:.2f}s (CHURN_SHUTDOWN_TIMEOUT=4)")
