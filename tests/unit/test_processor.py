"""The batch processor over the in-memory store: DLQ, counters, redelivery, scores."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest

from core.apply import REDELIVERED
from state.memory_store import MemoryFeatureStore
from stream.worker.processor import BatchProcessor, DeadLetter, Record


def ev(i: int, user: str = "u1", t: int = 1_600_000_000_000, **kw: object) -> bytes:
    body = {"event_id": f"e{i}", "user_id": user, "event_type": "view", "event_time": t, **kw}
    return json.dumps(body).encode()


def make() -> tuple[BatchProcessor, MemoryFeatureStore, list[DeadLetter]]:
    store = MemoryFeatureStore()
    dead: list[DeadLetter] = []

    async def sink(batch: Sequence[DeadLetter]) -> None:
        dead.extend(batch)

    return BatchProcessor(store, sink), store, dead


def test_batch_counts_dead_letters_and_scores() -> None:
    proc, store, dead = make()
    recs = [Record(0, 0, b"u1", ev(0)), Record(0, 1, b"u1", ev(0)),
            Record(0, 2, None, b"\xff"), Record(1, 0, b"u2", ev(1, "u2", price=-1)),
            Record(1, 1, b"u2", ev(2, "u2", event_type="purchase", price=3))]
    stats = asyncio.run(proc.process(recs))
    assert stats.rejected == 2 and stats.statuses == {0: 2, 3: 1}
    assert [d.reason for d in dead] == ["payload:invalid_utf8", "price:negative"]
    letter = json.loads(dead[0].to_json("events"))
    assert letter["raw_b64"] == "/w==" and letter["offset"] == 2
    s = asyncio.run(store.stats())
    assert s == {"applied": 2, "duplicate": 1, "rejected": 2, "rejected:payload:invalid_utf8": 1,
                 "rejected:price:negative": 1, "type:view": 1, "type:purchase": 1}
    assert asyncio.run(store.applied_offsets()) == {0: 2, 1: 1}
    assert set(store.scores) == {"u1", "u2"}
    assert store.scores["u1"].as_of_ms == 1_600_000_000_000


def test_tombstones_and_odd_keys_are_dead_letters() -> None:
    proc, store, dead = make()
    recs = [Record(0, 0, b"u1", None), Record(0, 1, None, None), Record(0, 2, b"\xff", b"{"),
            Record(0, 3, b"u1", ev(3))]
    stats = asyncio.run(proc.process(recs))
    assert stats.rejected == 3 and stats.statuses == {0: 1}
    assert [d.reason for d in dead] == ["payload:tombstone", "payload:tombstone",
                                        "payload:invalid_json"]
    letters = [json.loads(d.to_json("events")) for d in dead]
    assert letters[0]["raw"] is None and letters[0]["key"] == "u1"
    assert letters[1]["key"] is None
    assert letters[2]["key_b64"] == "/w==" and letters[2]["raw"] == "{"
    assert asyncio.run(store.applied_offsets()) == {0: 3}


def test_redelivery_after_restart_changes_nothing_but_rescores() -> None:
    proc, store, dead = make()
    recs = [Record(0, i, b"u1", ev(i, t=1_600_000_000_000 + i)) for i in range(5)]
    recs.append(Record(0, 5, None, b"junk"))
    asyncio.run(proc.process(recs))
    before = (asyncio.run(store.stats()), len(dead))
    store.scores.clear()
    fresh = BatchProcessor(store, proc.dead_letters)  # a restarted worker
    stats = asyncio.run(fresh.process([*recs, Record(0, 6, b"u1", ev(9, t=1_600_000_000_100))]))
    assert stats.skipped == 6 and stats.statuses == {REDELIVERED: 5, 0: 1}
    after = asyncio.run(store.stats())
    assert after["applied"] == before[0]["applied"] + 1
    assert after["rejected"] == before[0]["rejected"]
    assert len(dead) == before[1]  # the junk record is not dead-lettered twice
    assert "u1" in store.scores  # re-read users are rescored


class FlakyStore(MemoryFeatureStore):
    """Fails the first ``fail`` applies after they did (or did not) land."""

    def __init__(self, fail: int, land: bool) -> None:
        super().__init__()
        self.fail, self.land = fail, land

    async def apply(self, items, commits=()):  # type: ignore[no-untyped-def]
        if self.fail and items:
            self.fail -= 1
            if self.land:  # the reply is lost after Redis applied the batch
                await super().apply(items, commits)
            raise ConnectionError("connection reset")
        return await super().apply(items, commits)


@pytest.mark.parametrize("land", [False, True])
def test_retry_after_lost_connection_counts_once(land: bool) -> None:
    store = FlakyStore(fail=2, land=land)
    dead: list[DeadLetter] = []

    async def sink(batch: Sequence[DeadLetter]) -> None:
        dead.extend(batch)

    proc = BatchProcessor(store, sink)
    retries: list[float] = []
    recs = [Record(0, i, b"u", ev(i, t=1_600_000_000_000 + i)) for i in range(4)]
    recs.append(Record(0, 4, None, b"junk"))
    stats = asyncio.run(proc.process_until_done(
        recs, on_retry=lambda exc, delay: retries.append(delay), first_delay=0.001))
    assert len(retries) == 2 and retries[1] == 2 * retries[0]
    s = asyncio.run(store.stats())
    assert s["applied"] == 4 and s["rejected"] == 1, (land, s)
    assert stats.statuses == ({4: 4} if land else {0: 4})
    assert store.scores["u1"].as_of_ms == 1_600_000_000_003  # rescored either way
    # DLQ is at-least-once: re-sent while the batch had not landed, not after
    assert len(dead) == (1 if land else 3)


class FailsOnce(MemoryFeatureStore):
    """The ``at``-th apply (1-based) fails once, before it lands."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.calls, self.at = 0, at

    async def apply(self, items, commits=()):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == self.at:
            raise ConnectionError("connection reset")
        return await super().apply(items, commits)


@pytest.mark.parametrize("fail_at", [0, 2])
def test_a_confirmed_clock_jump_commits_with_its_own_segment(fail_at: int) -> None:
    """Two users jump the clock three days ahead: the second confirms the jump, which
    crosses anchors, so its record starts the batch's second segment. The guard's new
    state goes with that segment: a batch that fails between the two segments and is
    retried ends exactly like one that did not (before, the first segment carried it,
    and the retry held the confirming record as unconfirmed, anchors not run)."""
    from stream.anchors import Anchors

    async def nowhere(msgs: object) -> None:
        pass

    store = FailsOnce(fail_at)
    proc = BatchProcessor(store, nowhere, churn_horizon_days=3,
                          anchors=Anchors(store, nowhere, 3, 1.0),
                          clock_step_ms=3_600_000, clock_users=2)
    t0 = 1_600_000_000_000 - 1_600_000_000_000 % 86_400_000
    jump = t0 + 3 * 86_400_000
    times = [(t0, "u1"), (t0 + 60_000, "u2"), (jump, "a"), (jump + 60_000, "b"),
             (jump + 120_000, "u1")]
    recs = [Record(0, i, u.encode(), ev(i, user=u, t=t)) for i, (t, u) in enumerate(times)]
    asyncio.run(proc.process_until_done(recs, first_delay=0.001))
    assert store.calls == (4 if fail_at else 3)  # (three segments: two crossings)
    stats = asyncio.run(store.stats())
    assert stats["clock:unconfirmed"] == 1 and stats["applied"] == 5, stats
    clock = asyncio.run(store.clock())
    assert clock["a:0"] == jump - jump % 86_400_000  # the anchors of the jump ran
    assert asyncio.run(store.watermarks())[0] == jump + 120_000
    assert asyncio.run(store.unconfirmed()).get(0) in (None, "{}")
