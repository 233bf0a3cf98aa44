"""A batch's last rescore deferred while the next batch is applied (stream/worker/turns.py):
the same state and scores as rescoring in line, the batch before rescored when the next
returns, sweeps wait for it, and a failed deferred rescore is redone with its batch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest

from core.apply import REDELIVERED
from state.memory_store import MemoryFeatureStore
from stream.worker.processor import BatchProcessor, DeadLetter, Record
from stream.worker.turns import Turns

T0 = 1_600_000_000_000


def batches() -> list[list[Record]]:
    out, off = [], 0
    for b in range(6):
        recs = []
        for i in range(20):
            user = f"u{(b * 7 + i) % 13}"
            body = {"event_id": f"e{off}", "user_id": user, "event_type": "view",
                    "event_time": T0 + off * 3_600_000, "price": float(i)}
            recs.append(Record(int(user[1:]) % 2, off, user.encode(),  # a user, a partition
                               json.dumps(body).encode()))
            off += 1
        out.append(recs)
    return out


def make(defer: bool) -> tuple[BatchProcessor, MemoryFeatureStore]:
    async def sink(batch: Sequence[DeadLetter]) -> None:
        pass

    store = MemoryFeatureStore()
    return BatchProcessor(store, sink, defer=defer), store


async def run_all(proc: BatchProcessor) -> None:
    for recs in batches():
        await proc.process_until_done(recs, first_delay=0)
    await proc.settle()


def test_deferred_rescores_end_where_rescoring_in_line_ends() -> None:
    inline, want = make(defer=False)
    asyncio.run(run_all(inline))
    proc, got = make(defer=True)
    asyncio.run(run_all(proc))
    assert got.scores == want.scores and len(got.scores) == 13
    assert asyncio.run(got.stats()) == asyncio.run(want.stats())
    assert proc.lock.tail is None and not proc.lock.redo


def test_the_batch_before_is_rescored_when_the_next_returns() -> None:
    proc, store = make(defer=True)
    first, second = batches()[:2]

    async def go() -> tuple[set[str], set[str], set[str]]:
        await proc.process(first)
        pending = set(store.scores)  # its rescore may still be under way
        await proc.process(second)
        after_second = set(store.scores)
        await proc.settle()
        return pending, after_second, set(store.scores)

    pending, after_second, settled = asyncio.run(go())
    users_first = {r.key.decode() for r in first if r.key}
    assert not pending  # deferred: nothing scored yet when process() returned
    assert users_first <= after_second
    assert settled == users_first | {r.key.decode() for r in second if r.key}


def test_a_sweep_waits_for_the_deferred_rescore() -> None:
    proc, store = make(defer=True)
    seen: list[int] = []

    async def go() -> None:
        await proc.process(batches()[0])
        async with proc.lock:  # what the Sweeper does
            seen.append(len(store.scores))

    asyncio.run(go())
    assert seen == [len({r.key for r in batches()[0]})]


class Flaky:
    """Live.rescore failing ``times`` times with a retryable (or another) error."""

    def __init__(self, proc: BatchProcessor, times: int, exc: BaseException) -> None:
        self.inner, self.times, self.exc = proc.live.rescore, times, exc
        proc.live.rescore = self  # type: ignore[method-assign]

    async def __call__(self, todo: Any) -> Any:
        await asyncio.sleep(0)
        if self.times:
            self.times -= 1
            raise self.exc
        return await self.inner(todo)


def test_a_failed_deferred_rescore_is_redone_with_its_batch() -> None:
    inline, want = make(defer=False)
    asyncio.run(run_all(inline))
    proc, got = make(defer=True)
    Flaky(proc, 2, ConnectionError("redis went away"))
    retries: list[str] = []
    statuses: list[dict[int, int]] = []

    async def go() -> None:
        for recs in batches():
            st = await proc.process_until_done(
                recs, on_retry=lambda exc, d: retries.append(str(exc)), first_delay=0)
            statuses.append(st.statuses)
        await proc.settle()

    asyncio.run(go())
    assert retries == ["redis went away", "redis went away"]
    # batch 0's rescore failed under batch 1: both again (redelivered), then batch 1's
    # failed under batch 2: batches 0-2 again
    assert statuses[1] == {REDELIVERED: 40} and statuses[2] == {REDELIVERED: 60}
    assert got.scores == want.scores
    # tiers are rank positions: rescoring batch 0 after batch 1 was applied moves them
    assert stable(asyncio.run(got.stats())) == stable(asyncio.run(want.stats()))


def stable(stats: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in stats.items() if k != "alerts" and not k.startswith("transition")}


def test_what_is_not_retryable_ends_it() -> None:
    proc, _ = make(defer=True)
    Flaky(proc, 1, ValueError("a bug"))

    async def go() -> None:
        for recs in batches()[:2]:
            await proc.process_until_done(recs, first_delay=0)

    with pytest.raises(ValueError, match="a bug"):
        asyncio.run(go())


def test_turns_shield_the_deferred_rescore_from_a_cancelled_waiter() -> None:
    async def go() -> list[str]:
        turns, done = Turns(), []

        async def rescore() -> None:
            await asyncio.sleep(0.05)
            done.append("rescored")

        turns.defer(rescore(), [])
        waiter = asyncio.ensure_future(turns.drain())
        await asyncio.sleep(0.01)
        waiter.cancel()
        await asyncio.sleep(0.1)
        return done

    assert asyncio.run(go()) == ["rescored"]
