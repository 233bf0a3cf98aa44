"""The sweeper: silent users are rescored as event time passes.

Run by a faust timer in every worker over the partitions it owns. When a partition's
last anchor ``A`` (see :mod:`stream.anchors`) is newer than its ``swept_until``, every
non-churned user of the partition whose newest event is at or before ``A`` is rescored
at ``A`` (recency grows, windows empty out) in chunks of ``CHURN_SWEEP_CHUNK``: one
script call computes the chunk's window aggregates, the scorer scores the chunk as
one matrix, one transaction writes the scores. Users silent for more than H days
first move to tier ``churned`` and out of the ranking. Then ``swept_until = A``, and
churned users silent for ``CHURN_RETENTION_DAYS`` are deleted.

Chunks hold the processor's lock, so batches and sweeps interleave but never
overlap; a score written for an event after ``A`` is never overwritten by the sweep
(``write_scores.lua`` keeps the newer one).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from core.labels import DAY_MS
from state.store import FeatureStore, Placed
from stream.worker.live import Live, RescoreStats


@dataclass
class SweepStats:
    partition: int
    anchor_ms: int
    users: int = 0
    churned: int = 0
    alerts: int = 0
    retired: int = 0
    seconds: float = 0.0


class Sweeper:
    def __init__(self, store: FeatureStore, live: Live, lock: AbstractAsyncContextManager[Any],
                 horizon_days: int = 30, chunk: int = 1000, retention_days: int = 0,
                 chunks_per_hold: int = 8, swept: dict[int, int] | None = None,
                 on_swept: Callable[[SweepStats], None] | None = None) -> None:
        self.store = store
        self.on_swept = on_swept  # metrics
        # the anchor reached per partition, shared with the BatchProcessor (its
        # ``swept``): batches catch up users who arrive entirely behind it
        self.swept = swept if swept is not None else {}
        self.live = live
        self.lock = lock
        self.h_ms = horizon_days * DAY_MS
        self.chunk = chunk
        self.hold = chunks_per_hold
        self.retention_ms = retention_days * DAY_MS

    async def due(self, partitions: set[int]) -> list[tuple[int, int]]:
        """(partition, anchor) pairs whose sweep is behind the anchor clock."""
        clock = await self.store.clock()
        out = []
        for p in sorted(partitions):
            a = clock.get(f"a:{p}")
            if a is not None and clock.get(f"s:{p}", -1) < a:
                out.append((p, a))
        return out

    async def _pipelined(self, block: list[list[str]], partition: int, at: int,
                         out: SweepStats, indexed: bool = True) -> None:
        """Chunk j is scored in Python while Redis computes chunk j + 1's aggregates and
        writes chunk j - 1's scores; tiers of chunk j - 1 are then decided from them."""
        live, store = self.live, self.store
        nxt = asyncio.ensure_future(store.aggregates_at(block[0], at, partition))
        pending: tuple[Any, Any, asyncio.Future[list[Placed]]] | None = None
        for j, part in enumerate(block):
            aggs = await nxt
            if j + 1 < len(block):
                nxt = asyncio.ensure_future(store.aggregates_at(block[j + 1], at,
                                                                  partition))
                # let it send its request now: scoring below does not yield, and without
                # this Redis sat idle while Python scored (their CPU times added up)
                await asyncio.sleep(0)
            # skip users deleted, or with an event after A since the list was read
            writes, feats = live.prepare([(u, partition, a) for u, a in zip(part, aggs, strict=True)
                                          if a is not None and a.last_ms <= at],
                                         sweep=indexed)
            written = asyncio.ensure_future(store.write_scores(writes))
            if pending is not None:
                self._count(out, await live.finish(pending[0], pending[1], await pending[2]))
            pending = (writes, feats, written)
        if pending is not None:
            self._count(out, await live.finish(pending[0], pending[1], await pending[2]))

    def _groups(self, anchor_ms: int, users: list[tuple[str, int]],
                out: SweepStats) -> list[tuple[int, list[str]]]:
        """The churned leave the ranking first, so the others are ranked without them.
        Each is scored and churned at its own churn anchor (the first midnight more than
        H after its newest event), whichever sweep finds it: sweeps may skip anchors
        when event time runs ahead, and the result must not depend on that."""
        groups: dict[int, list[str]] = {}
        rest = []
        for u, last in users:
            if anchor_ms - last > self.h_ms:
                at = last + self.h_ms
                groups.setdefault(at - at % DAY_MS + DAY_MS, []).append(u)
                out.churned += 1
            else:
                rest.append(u)
        return [*sorted(groups.items()), (anchor_ms, rest)]

    async def catch_up(self, partition: int, anchor_ms: int,
                       users: list[tuple[str, int]]) -> SweepStats:
        """Score ``(user, newest event)`` pairs as the sweep of ``anchor_ms`` does. Called
        by the processor, which holds the lock, for users whose every event arrived
        after that sweep had listed the partition."""
        out = SweepStats(partition, anchor_ms)
        for at, group in self._groups(anchor_ms, users, out):
            for i in range(0, len(group), self.chunk):
                # not yet in the active index: the writes put them there
                await self._pipelined([group[i:i + self.chunk]], partition, at, out,
                                      indexed=False)
        return out

    @staticmethod
    def _count(out: SweepStats, st: RescoreStats) -> None:
        out.users += st.scored
        out.alerts += st.alerts

    async def behind(self, partition: int, anchor_ms: int) -> SweepStats | None:
        """The sweep of ``anchor_ms`` if the partition's sweeps have not reached it. The
        processor (holding the lock) calls it before its clock passes the next anchor:
        every anchor is swept, and a silent user's tier moves day by day, however fast
        a replay goes (the timer alone falls behind a fast replay and skips days)."""
        clock = await self.store.clock()
        first = clock.get(f"f:{partition}")
        if first is None or anchor_ms < first or clock.get(f"s:{partition}", -1) >= anchor_ms:
            return None
        return await self.sweep(partition, anchor_ms, held=True)

    async def sweep(self, partition: int, anchor_ms: int, held: bool = False) -> SweepStats:
        """Rescore the partition's users at ``anchor_ms`` (``held``: the caller holds the
        lock)."""
        started = time.perf_counter()
        hold = contextlib.nullcontext() if held else self.lock
        out = SweepStats(partition, anchor_ms)
        # from now on a batch scores a user entirely before the anchor at the anchor
        # itself (catch_up), so one listed too early or too late is scored the same way
        self.swept[partition] = max(anchor_ms, self.swept.get(partition, anchor_ms))
        users = await self.store.active_users(partition, float("-inf"), anchor_ms)
        for at, group in self._groups(anchor_ms, users, out):
            chunks = [group[i:i + self.chunk] for i in range(0, len(group), self.chunk)]
            for b in range(0, len(chunks), self.hold):
                block = chunks[b:b + self.hold]
                # A few chunks per hold of the lock, pipelined: Redis computes the next
                # chunk's aggregates while this one is scored. Nothing read in one hold
                # is used after it, so no batch can slip in between a read and a write.
                async with hold:
                    await self._pipelined(block, partition, at, out)
        async with hold:
            await self.store.set_clock(f"s:{partition}", anchor_ms)
            if self.retention_ms:
                out.retired = await self.store.retire(partition, anchor_ms - self.retention_ms)
        out.seconds = time.perf_counter() - started
        if self.on_swept is not None:
            self.on_swept(out)
        return out
