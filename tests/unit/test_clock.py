"""The partition clock (core.clock) and the processor's use of it: no single user's
records move a partition's clock by more than one step; traffic of several users does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from core.clock import ClockGuard
from core.labels import DAY_MS
from core.tiers import AlertGate, TierPolicy
from state.memory_store import MemoryFeatureStore
from stream.anchors import Anchors
from stream.worker.live import Live
from stream.worker.processor import BatchProcessor, DeadLetter, Record

STEP = 10


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=60))
def test_one_user_moves_the_clock_one_step_at_most(times: list[int]) -> None:
    g = ClockGuard(STEP, users=2)
    clock = g.observe(times[0], "u")
    for t in times[1:]:
        new = g.observe(t, "liar")
        assert new == clock or (clock < new <= clock + STEP and new == t)
        clock = new


@given(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from("abcdef")), max_size=80))
def test_dense_traffic_is_the_plain_watermark(events: list[tuple[int, str]]) -> None:
    """Records never more than a step apart: the clock is the running maximum."""
    g = ClockGuard(10**7, users=2)
    top = None
    for t, u in events:
        top = t if top is None else max(top, t)
        assert g.observe(t, u) == top
    assert g.pending == {}


def test_a_jump_is_confirmed_by_a_second_user_at_the_earliest_of_them() -> None:
    g = ClockGuard(STEP, users=3)
    g.observe(0, "a")
    assert [g.observe(t, u) for t, u in [(500, "x"), (505, "x"), (503, "y")]] == [0, 0, 0]
    assert g.observe(508, "z") == 500  # three users within a step: at the earliest
    assert g.pending == {}
    assert g.observe(9_000, "far") == 500 and g.pending == {"far": 9_000}


def test_the_nearest_unconfirmed_are_kept_and_storage_round_trips() -> None:
    g = ClockGuard(STEP, users=2, keep=3)
    g.observe(0, "a")
    for i, t in enumerate([900, 100, 700, 300]):
        g.observe(t, f"u{i}")
    assert g.pending == {"u1": 100, "u3": 300, "u2": 700}
    assert ClockGuard.loads(g.dumps()) == g.pending
    assert ClockGuard.loads(b"not json") == {} and ClockGuard.loads('[1]') == {}


def _body(i: int, user: str, t: int) -> bytes:
    return json.dumps({"event_id": f"e{i}", "user_id": user, "event_type": "view",
                       "event_time": t}).encode()


async def _nowhere(msgs: Sequence[object]) -> None:
    pass


def _processor(store: MemoryFeatureStore) -> BatchProcessor:
    live = Live(store, _nowhere, TierPolicy(), AlertGate(), 3)  # type: ignore[arg-type]
    anchors = Anchors(store, _nowhere, horizon_days=3, sample_rate=1.0)  # type: ignore[arg-type]

    async def dlq(dead: Sequence[DeadLetter]) -> None:
        raise AssertionError(dead)

    return BatchProcessor(store, dlq, churn_horizon_days=3, live=live, anchors=anchors,
                          clock_step_ms=DAY_MS, clock_users=2)


def test_an_outlier_runs_no_anchors_and_is_counted_until_traffic_confirms() -> None:
    t0 = 20_000 * DAY_MS
    store = MemoryFeatureStore()
    log = [("a", t0 + 3_600_000), ("b", t0 + 7_200_000), ("liar", t0 + 3000 * DAY_MS),
           ("a", t0 + DAY_MS + 60_000)]

    async def run(proc: BatchProcessor, recs: list[tuple[str, int]], first: int) -> None:
        await proc.process([Record(0, first + i, u.encode(), _body(first + i, u, t))
                            for i, (u, t) in enumerate(recs)])

    asyncio.run(run(_processor(store), log, 0))
    clock = asyncio.run(store.clock())
    assert clock["a:0"] == t0 + DAY_MS  # one ordinary midnight, not 3000 of them
    assert asyncio.run(store.watermarks()) == {0: t0 + DAY_MS + 60_000}
    stats = asyncio.run(store.stats())
    assert stats["clock:unconfirmed"] == 1 and stats["anchors"] == 1 and stats["applied"] == 4
    user, _ = asyncio.run(store.user("liar"))
    assert user is not None and user.last_ms == t0 + 3000 * DAY_MS  # applied to its user
    # a restarted worker remembers the unconfirmed record; a gap of 5 days confirmed by two
    # users moves the clock to the earlier of them and runs the anchors in between
    later = [("c", t0 + 6 * DAY_MS + 5), ("d", t0 + 6 * DAY_MS + 9)]
    proc = _processor(store)
    asyncio.run(run(proc, later, len(log)))
    assert asyncio.run(store.unconfirmed()) == {0: json.dumps({"liar": t0 + 3000 * DAY_MS},
                                                              separators=(",", ":"))}
    assert asyncio.run(store.clock())["a:0"] == t0 + 6 * DAY_MS
    assert asyncio.run(store.watermarks())[0] == t0 + 6 * DAY_MS + 5  # the earlier one
    assert asyncio.run(store.stats())["anchors"] == 6
