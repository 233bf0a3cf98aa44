"""Event time that lies: a replay with outliers churns and deletes nobody else.

The same simulated log is replayed twice through real Tansu + Redis + workers, once
clean and once with hostile times mixed in: an event dated 2199 and one two days
ahead of the wall clock sent straight to ``events`` (both ``event_time:future``, dead
letters), a new user's event four years after the log (valid, in the past: applied to
that user, counted ``clock:unconfirmed``, the partitions' clocks do not move) and an
existing user's event from 1999 (late outside the window: lifetime fields only).
Everyone else ends exactly as in the clean run: state, churned or not, deleted or
not; every partition's anchors, sweeps and labels are the same.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from core.tiers import ALL_TIERS, CHURNED
from offline.replay import replay
from offline.simulate import START_MS, Population
from state.codec import decode_state, decode_tier
from tests.integration.conftest import Namespace, read_topic
from tests.integration.test_poison import producer
from tests.reference import DAY

pytestmark = pytest.mark.integration

ENV = {"CHURN_RETENTION_DAYS": "60", "CHURN_LABEL_WARMUP_DAYS": "0",
       "CHURN_LABEL_SAMPLE_RATE": "0.2"}


def _outcome(ns: Namespace) -> dict[str, tuple[object, ...]]:
    """State and churned-or-not of every user (the other stored tiers depend on how
    batches and sweeps interleave: rank positions, see README "Known gaps")."""
    churned = ALL_TIERS.index(CHURNED)
    return {uid.decode(): (decode_state(h), b"t" in h and decode_tier(h[b"t"]).tier == churned)
            for uid, h in ns.user_hashes().items()}


def _clocks(ns: Namespace) -> dict[str, int]:
    return {k: v for k, v in ns.clock().items() if k[0] in "afs"}


def test_outlying_event_times_move_no_clock(services, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines = list(Population(users=250, days=75, seed=5).jsonl())
    victim = json.loads(lines[100])["user_id"]
    liar = {"event_id": "liar", "user_id": "liar", "event_type": "view",
            "event_time": START_MS + 4 * 365 * DAY}
    ancient = {"event_id": "ancient", "user_id": victim, "event_type": "purchase",
               "price": 5.0, "event_time": "1999-06-01T12:00:00Z"}
    mid = len(lines) // 2
    (tmp_path / "clean.jsonl").write_bytes(b"".join(x + b"\n" for x in lines))
    poisoned = [*lines[:mid], json.dumps(liar).encode(), *lines[mid:mid + 50],
                json.dumps(ancient).encode(), *lines[mid + 50:]]
    (tmp_path / "poisoned.jsonl").write_bytes(b"".join(x + b"\n" for x in poisoned))

    clean, bad = Namespace(services, tmp_path), Namespace(services, tmp_path)
    try:
        for ns in (clean, bad):
            ns.extra_env.update(ENV)
            ns.start_worker()
        replay(tmp_path / "clean.jsonl", clean.settings(), progress=False)
        settings = bad.settings()
        head = poisoned[:mid]
        (tmp_path / "head.jsonl").write_bytes(b"".join(x + b"\n" for x in head))
        replay(tmp_path / "head.jsonl", settings, progress=False)
        prod = producer(settings.kafka_bootstrap)  # a hostile producer, past replay's check
        for i, t in enumerate(["2199-06-01T00:00:00Z", int(time.time() * 1000) + 2 * DAY]):
            body = {"event_id": f"future{i}", "user_id": victim, "event_type": "view",
                    "event_time": t}
            prod.send(settings.events_topic, key=victim.encode(), value=json.dumps(body).encode())
        prod.flush()
        prod.close()
        (tmp_path / "tail.jsonl").write_bytes(b"".join(x + b"\n" for x in poisoned[mid:]))
        replay(tmp_path / "tail.jsonl", settings, progress=False)
        clean.wait_consumed(len(lines), timeout=240)
        bad.wait_consumed(len(poisoned) + 2, timeout=240)
        for ns in (clean, bad):
            ns.wait_scored(timeout=120)

        assert _clocks(bad) == _clocks(clean)  # the same anchors and sweeps everywhere
        assert bad.redis().hgetall(f"t{bad.name}:watermark") == \
            clean.redis().hgetall(f"t{clean.name}:watermark")
        want, got = _outcome(clean), _outcome(bad)
        assert sum(1 for _, gone in want.values() if gone) > 0  # some churned ...
        assert len(want) < 250  # ... and some deleted in the clean run
        assert got.keys() == want.keys() | {"liar"}
        for uid in want:
            if uid != victim:
                assert got[uid] == want[uid], uid
        assert got[victim][0].first_ms < want[victim][0].first_ms  # tenure from 1999
        assert got["liar"][0].last_ms == liar["event_time"]
        s, c = bad.stats(), clean.stats()
        assert s["rejected:event_time:future"] == 2 and s["clock:unconfirmed"] == 1
        assert s["late_outside"] == c.get("late_outside", 0) + 1
        for name in ("anchors", "snapshots", "released", "released_label_1"):
            assert s[name] == c[name], name
        letters = [json.loads(v) for v in read_topic(settings.kafka_bootstrap,
                                                     settings.dlq_topic, 2)]
        assert sorted(d["reason"] for d in letters) == ["event_time:future"] * 2
    finally:
        clean.stop()
        bad.stop()
