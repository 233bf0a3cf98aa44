"""Lanes and chunks (stream/worker/lanes.py): the same batches give the same state, labels
and counters in one lane and one chunk as in several, also when a chunk fails and the
batch is retried."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.events import Event
from state.store import Item
from stream.anchors import Anchors
from stream.worker.lanes import lanes_of, run_lanes, user_chunks
from stream.worker.processor import BatchProcessor, Record
from tests.unit.test_processor import FailsOnce

DAY = 86_400_000
T0 = 1_600_000_000_000 - 1_600_000_000_000 % DAY


@given(st.lists(st.integers(0, 9), max_size=60), st.integers(1, 6))
def test_user_chunks_keep_every_item_once_and_each_user_whole(users: list[int], k: int) -> None:
    items = [Item(Event(event_id=f"e{i}", user_id=f"u{u}", event_type="view",
                        event_time=T0 + i), 0, i, False) for i, u in enumerate(users)]
    last = {}
    for i, it in enumerate(items):
        last[it.event.user_id] = i
    chunks = user_chunks(items, last, k)
    assert sorted(it.offset for c in chunks for it in c) == list(range(len(items)))
    owner = {it.event.user_id: j for j, c in enumerate(chunks) for it in c}
    for j, c in enumerate(chunks):
        assert all(owner[it.event.user_id] == j for it in c)  # a user in one chunk only
        assert [it.offset for it in c] == sorted(it.offset for it in c)  # in order
    assert len(chunks) == (k if len(last) >= 2 * k else 1)
    assert all(chunks) or len(chunks) == 1


def test_lanes_deal_the_batch_partitions_in_turn() -> None:
    assert lanes_of([7, 3, 3, 9, 1], 2) == {1: 0, 3: 1, 7: 0, 9: 1}
    assert lanes_of([4, 2], 1) == {2: 0, 4: 0}


def test_a_failing_lane_waits_for_the_others_before_raising() -> None:
    done: list[str] = []

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ConnectionError("reset")

    async def slow() -> None:
        await asyncio.sleep(0.05)
        done.append("slow")

    with pytest.raises(ConnectionError):
        asyncio.run(run_lanes([fails(), slow()]))
    assert done == ["slow"]  # not left running under the retry of its batch


def _records() -> list[list[Record]]:
    """Three partitions, 40 users over 9 days, a few duplicates and bad records: batches of
    60 records that cross anchors."""
    rng = random.Random(5)
    offsets = {0: 0, 1: 0, 2: 0}
    recs = []
    for i in range(540):
        u = rng.randrange(40)
        p = u % 3
        t = T0 + i * (9 * DAY // 540) + rng.randrange(3_600_000)
        body: dict[str, Any] = {"event_id": f"e{i if rng.random() > 0.05 else i - 1}",
                                "user_id": f"u{u}", "event_type": rng.choice(
                                    ["view", "view", "cart", "purchase"]), "event_time": t}
        if body["event_type"] == "purchase":
            body["price"] = rng.randrange(1, 90)
        raw = b"{bad" if rng.random() < 0.02 else json.dumps(body).encode()
        recs.append(Record(p, offsets[p], f"u{u}".encode(), raw))
        offsets[p] += 1
    return [recs[i:i + 60] for i in range(0, len(recs), 60)]


def _run(lanes: int, chunks: int, fail_at: int = 0) -> tuple[Any, ...]:
    store = FailsOnce(fail_at)
    examples: list[bytes] = []

    async def nowhere(msgs: object) -> None:
        pass

    async def training(releases: Any) -> None:
        examples.extend(r.message() for r in releases)

    proc = BatchProcessor(store, nowhere, churn_horizon_days=3,
                          anchors=Anchors(store, training, 3, 1.0), lanes=lanes,
                          chunks=chunks)

    async def go() -> tuple[Any, ...]:
        for batch in _records():
            await proc.process_until_done(batch, first_delay=0.001)
        users = {f"u{u}": await store.user(f"u{u}") for u in range(40)}
        # tier crossings are decided from ranks among all users, which the order of the
        # partitions' writes moves (as between several workers): every other counter
        stats = {k: v for k, v in (await store.stats()).items()
                 if not k.startswith("transition:") and k != "alerts"}
        return (users, stats, await store.applied_offsets(),
                await store.watermarks(), await store.clock(), sorted(examples))

    return asyncio.run(go())


@pytest.mark.parametrize(("lanes", "chunks", "fail_at"),
                         [(2, 1, 0), (1, 3, 0), (2, 2, 0), (3, 2, 0), (2, 3, 5), (1, 3, 7)])
def test_lanes_and_chunks_end_as_one_lane_does(lanes: int, chunks: int, fail_at: int) -> None:
    ref = _run(1, 1)
    got = _run(lanes, chunks, fail_at)
    assert ref[1]["applied"] > 400 and ref[1]["rejected"] > 0 and ref[1]["anchors"] >= 18
    assert len(ref[5]) > 50  # labels released
    for name, a, b in zip(("users", "stats", "offsets", "watermarks", "clock", "examples"),
                          ref, got, strict=True):
        assert a == b, name
