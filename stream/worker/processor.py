"""One batch of raw Kafka records -> validated, deduped state in Redis, features, scores.

Free of faust: the events consumer (:mod:`stream.worker.consumer`) hands it batches;
tests and benchmarks call it directly. Before a batch is acknowledged to Kafka: one
transaction applying it (``apply_event.lua``, the new state of its users back), then the
writes of the scores computed from them.

Exactly-once effect under at-least-once delivery: the per-user script rejects
re-applied (partition, offset) pairs but still returns the state, so a batch
re-read after a crash rescores its users; invalid records at or below a
partition's applied offset (read from Redis when a partition is assigned) are
not sent to the DLQ or counted again; event ids dedupe true duplicates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.clock import ClockGuard
from core.events import DEFAULT_EVENT_TYPES, Event, Rejected, latest_allowed_ms, parse_event
from core.labels import DAY_MS, due_anchors, first_anchor
from core.tiers import AlertGate, TierPolicy
from state.clients.resp import Contended, Fenced
from state.store import Applied, Commit, FeatureStore, Item, StaleBatch
from stream.anchors import Anchors
from stream.worker.lanes import lanes_of, run_lanes, user_chunks
from stream.worker.live import Live, rescore_batch
from stream.worker.records import FOREIGN, TOMBSTONE, BatchStats, DeadLetter, Record, Segment
from stream.worker.records import DeadLetterSink as DeadLetterSink

Segments = list[tuple[Segment, list[tuple[int, int]]]]  # each with the anchors after it

__all__ = ["TRANSIENT_ERRORS", "BatchProcessor", "BatchStats", "DeadLetter", "Record"]

# StaleBatch, Fenced, Contended: another worker committed or claimed a partition meanwhile
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError, OSError, asyncio.TimeoutError, RedisConnectionError, RedisTimeoutError,
    StaleBatch, Fenced, Contended)


class BatchProcessor:
    def __init__(self, store: FeatureStore, dead_letters: DeadLetterSink,
                 allowed_types: frozenset[str] = DEFAULT_EVENT_TYPES,
                 churn_horizon_days: int = 30, live: Live | None = None,
                 anchors: Anchors | None = None,
                 on_batch: Callable[[BatchStats], None] | None = None,
                 max_future_seconds: float = -1, clock_step_ms: int = DAY_MS,
                 clock_users: int = 1, turns: asyncio.Lock | None = None,
                 swept: dict[int, int] | None = None,
                 catch_up: Callable[[int, int, list[tuple[str, int]]], Awaitable[Any]] | None
                 = None, sweep_behind: Callable[[int, int], Awaitable[Any]] | None = None,
                 lanes: int = 1, chunks: int = 1) -> None:
        self.store = store
        self.dead_letters = dead_letters
        self.allowed_types = allowed_types
        self.horizon = churn_horizon_days
        self.live = live or Live(store, _no_alerts, TierPolicy(), AlertGate(),
                                 churn_horizon_days)
        self.anchors = anchors
        self.on_batch = on_batch  # metrics
        # batches never overlap sweep chunks (the Sweeper's lock), idle-clock anchors, recovery
        self.lock = turns if turns is not None else asyncio.Lock()
        self.max_future = max_future_seconds  # < 0: no bound (tests, replays of the future)
        self.clock_step, self.clock_users = clock_step_ms, clock_users
        self._applied: dict[int, int] | None = None
        self._anchor: dict[int, int] | None = None
        self._guards: dict[int, ClockGuard] = {}  # each partition's clock (core.clock)
        self._stale = False  # on_rebalance: reload the above before the next batch
        # each partition's swept anchor (the Sweeper's), and who scores a user before it
        self.swept: dict[int, int] = swept if swept is not None else {}
        self.catch_up, self.sweep_behind = catch_up, sweep_behind  # (Sweeper.behind)
        # partitions applied and scored concurrently, users in pipelined chunks (lanes.py)
        self.lanes, self.chunks = max(1, lanes), max(1, chunks)
        self.recovery: Any = None  # stream.worker.recovery.Recovery: state loss detected, rebuilt
        keys = getattr(store, "keys", None)
        self.foreign = keys.foreign if keys is not None and keys.cluster else None

    def on_rebalance(self) -> None:
        """Forget cached offsets and clocks (another worker may have moved them) at the next
        batch; one under way keeps its view (a value fit it waits for stops waiting)."""
        self._stale = True
        self.live.value.rebalancing = True

    def _forget(self) -> None:
        self._applied, self._anchor, self._guards, self._stale = None, None, {}, False
        self.live.value.rebalancing = False
        self.swept.clear()

    async def process_until_done(self, records: Sequence[Record],
                                 on_retry: Callable[[BaseException, float], None] | None = None,
                                 first_delay: float = 0.2, max_delay: float = 10.0) -> BatchStats:
        """:meth:`process`, retried with backoff while Redis (or the DLQ) is unreachable. A
        batch whose state landed comes back as redelivered (counted once, rescored); only
        DLQ messages and alerts may be sent twice."""
        delay = first_delay
        while True:
            try:
                return await self.process(records)
            except TRANSIENT_ERRORS as exc:
                self.on_rebalance()  # re-read what landed before retrying
                if on_retry is not None:
                    on_retry(exc, delay)
                await asyncio.sleep(delay)
                delay = min(max_delay, delay * 2)

    async def _load(self) -> tuple[dict[int, int], dict[int, int]]:
        if self._stale:
            self._forget()
        if self._applied is None:
            self._applied = await self.store.applied_offsets()
        if self._anchor is None:
            clock = await self.store.clock()
            anchor = {int(k[2:]): v for k, v in clock.items() if k.startswith("a:")}
            wms = await self.store.watermarks()
            for p, wm in wms.items():
                anchor.setdefault(p, first_anchor(wm))  # state from before anchors existed
            self._anchor = anchor
            await self.live.value.restore()  # the value fits that serve by day
            held = await self.store.unconfirmed()
            self._guards = {p: ClockGuard(self.clock_step, self.clock_users, wms.get(p),
                                          ClockGuard.loads(held.get(p)))
                            for p in set(wms) | set(held)}
            for k, v in clock.items():
                if k.startswith("s:"):
                    p = int(k[2:])
                    self.swept[p] = max(v, self.swept.get(p, v))
        return self._applied, self._anchor

    async def process(self, records: Sequence[Record]) -> BatchStats:
        """Apply and score ``records`` (with the sweeper's chunks waiting meanwhile)."""
        async with self.lock:
            started = time.perf_counter()
            stats = await (self._process(records) if self.recovery is None
                           else self.recovery.run(self._process, records))
            stats.seconds = time.perf_counter() - started
        if self.on_batch is not None:
            self.on_batch(stats)
        return stats

    def parser(self) -> Callable[[bytes | None], Event | Rejected]:
        """A record value's event or rejection (pure: the consumer parses a batch ahead,
        while the one before it is applied)."""
        allowed, latest = self.allowed_types, latest_allowed_ms(self.max_future)
        return lambda v: TOMBSTONE if v is None else parse_event(v, allowed, latest_ms=latest)

    async def _process(self, records: Sequence[Record]) -> BatchStats:
        stats = BatchStats(records=len(records))
        lanes, dead = await self._segments(records, stats)
        if dead:
            stats.rejected = len(dead)
            await self.dead_letters(dead)  # delivered before the batch commits
        await run_lanes([self._lane(segments, stats) for segments in lanes])
        return stats

    async def _lane(self, segments: Segments, stats: BatchStats) -> None:
        """One lane's segments in order, each applied and scored, then its anchors."""
        for seg, crossings in segments:
            await self._apply(seg, stats)
            for p, a in crossings:
                if self.sweep_behind is not None:
                    await self.sweep_behind(p, a - DAY_MS)
                stats.add_anchor(await self.anchors.run(p, a))  # type: ignore[union-attr]

    async def _segments(self, records: Sequence[Record], stats: BatchStats
                        ) -> tuple[list[Segments], list[DeadLetter]]:
        """The batch's lanes (stream/worker/lanes.py) of segments, each segment with the
        anchors to run after it, and the dead letters. Segment k of a lane: each of its
        partitions' records after their k-th anchor crossing in the batch (applied before
        that anchor runs; the lane's other partitions go on past it)."""
        applied, anchor = await self._load()
        parse, foreign = self.parser(), self.foreign
        dead: list[DeadLetter] = []
        lane = lanes_of({rec.partition for rec in records}, self.lanes)
        lanes: list[Segments] = [[(Segment(), [])] for _ in range(min(len(lane), self.lanes))]
        level: dict[int, int] = {}
        for rec in records:
            p, ev = rec.partition, rec.event
            if ev is None:
                ev = parse(rec.value)
            if foreign is not None and not isinstance(ev, Rejected) and foreign(ev.user_id, p):
                ev = FOREIGN  # (cluster placement: state/keys.py)
            segments = lanes[lane[p]]
            k = level.get(p, 0)
            seg = segments[k][0]
            fresh = rec.offset > applied.get(p, -1)
            if not fresh:
                stats.skipped += 1  # re-read after a crash or rebalance
            if isinstance(ev, Rejected):
                if fresh:
                    seg.reject(p, rec.offset, ev.reason)
                    dead.append(DeadLetter(rec, ev.reason))
                    stats.reasons[ev.reason] = stats.reasons.get(ev.reason, 0) + 1
                continue
            t, held, ahead = self._tick(p, ev.time_ms, ev.user_id, fresh)
            a = anchor.get(p)
            if a is None:  # the partition's first event: its clock starts that day
                anchor[p] = a = first_anchor(t)
                await self.store.set_clock(f"a:{p}", a)
                await self.store.set_clock(f"f:{p}", a)  # where it started (label warm-up)
            if t > a + DAY_MS and self.anchors is not None:  # (due_anchors is not empty)
                # apply what came before, then run the anchors this event passes
                crossed = due_anchors(a, t)
                segments[k][1].extend((p, x) for x in crossed)
                level[p] = k = k + 1
                if k == len(segments):
                    segments.append((Segment(), []))
                seg = segments[k][0]
                anchor[p] = crossed[-1]
            # the clock's effects go with the record's own segment (committed together)
            if held is not None:
                seg.unconfirmed[p] = held
            if ahead:
                seg.count(p, "clock:unconfirmed")
            seg.add(Item(ev, p, rec.offset, False), t, fresh)
            if t > stats.newest.get(p, -1):
                stats.newest[p] = t
        return lanes, dead

    async def advance(self, partition: int, target_ms: int) -> BatchStats:
        """Run the anchors of ``partition`` that an event at ``target_ms`` would run, with
        no event (an idle partition following the others, or the wall clock:
        core/time_policy.py). Nothing for a partition that has had no event yet."""
        stats = BatchStats(records=0)
        if self.anchors is None:
            return stats
        async with self.lock:
            _, anchor = await self._load()
            a = anchor.get(partition)
            if a is None:
                return stats
            for x in due_anchors(a, target_ms):
                stats.add_anchor(await self.anchors.run(partition, x))
                anchor[partition] = x
        return stats

    def _tick(self, p: int, t: int, user: str, fresh: bool) -> tuple[int, str | None, bool]:
        """The partition's clock after an event at ``t`` (core.clock), the records held
        ahead of it when they changed (None: unchanged), and whether this one is held."""
        g = self._guards.get(p)
        if g is None:
            g = self._guards[p] = ClockGuard(self.clock_step, self.clock_users)
        if not fresh and g.clock is not None:
            # re-read after a crash or a rebalance: the guard, loaded from Redis, already
            # holds its effect; observed again, a record the clock had since come near
            # would move the clock where the first reading never did
            return g.clock, None, False
        changes = g.changes
        clock = g.observe(t, user)
        return (clock, g.dumps() if g.changes != changes else None,
                fresh and t - clock > g.step)

    async def _apply(self, seg: Segment, stats: BatchStats) -> None:
        """Apply ``seg`` and rescore its users, in chunks of users pipelined
        (stream/worker/lanes.py): Redis applies chunk j + 1 while chunk j is scored. The
        partitions' commits go with the last chunk (a crash before it: the batch is read
        again, its applied events come back redelivered and are rescored)."""
        if not seg.items and not seg.last_off:
            return
        items = seg.items
        for i in seg.last_of_user.values():
            items[i] = items[i]._replace(want_state=True)
        assert self._applied is not None
        chunks = user_chunks(items, seg.last_of_user, self.chunks)
        commits, last = seg.commits(self._applied), len(chunks) - 1
        # the chunks' transactions sent at once, each on a connection of its own; the last,
        # with the partitions' commits, once the others have landed
        sent = [asyncio.ensure_future(self._send(c, [], stats)) for c in chunks[:last]]
        sent.append(asyncio.ensure_future(self._send(chunks[last], commits, stats, sent[:])))
        try:
            for j, chunk in enumerate(chunks):
                results = await sent[j]
                if j == last:
                    for p, off in seg.last_off.items():
                        self._applied[p] = max(off, self._applied.get(p, -1))
                await rescore_batch(self.live, stats.count_applied(chunk, results), stats,
                                    self.swept, self.catch_up)
        finally:
            for f in sent:  # scoring failed: the batch is retried, not left half-sent
                f.cancel()
            await asyncio.gather(*sent, return_exceptions=True)

    async def _send(self, items: list[Item], commits: list[Commit], stats: BatchStats,
                    after: Sequence[asyncio.Future[Any]] = ()) -> list[Applied]:
        for f in after:
            await f
        started = time.perf_counter()
        results = await self.store.apply(items, commits)
        stats.redis_seconds["apply"] = stats.redis_seconds.get("apply", 0.0) + (
            time.perf_counter() - started)
        return results


async def _no_alerts(alerts: Sequence[tuple[bytes, bytes]]) -> None:
    """Default alert sink of a processor built without one (tests, evaluation)."""
