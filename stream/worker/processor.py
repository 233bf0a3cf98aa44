"""One batch of raw Kafka records -> validated, deduped state in Redis, features, scores.

Free of faust: the batch handler (:mod:`stream.worker.handler`) hands it batches;
tests and benchmarks call it directly. Before a batch is acknowledged to Kafka: one
MULTI/EXEC holding one script per event plus the batch's counters (it returns the new
state of every touched user), then the writes of the scores computed from them.

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

from core.apply import DUPLICATE
from core.clock import ClockGuard
from core.events import DEFAULT_EVENT_TYPES, Rejected, latest_allowed_ms, parse_event
from core.labels import DAY_MS, due_anchors, first_anchor
from core.tiers import AlertGate, TierPolicy
from state.clients.resp import Contended, Fenced
from state.store import Commit, FeatureStore, Item, StaleBatch
from stream.anchors import Anchors
from stream.worker.live import Live
from stream.worker.records import FOREIGN, TOMBSTONE, BatchStats, DeadLetter, Record
from stream.worker.records import DeadLetterSink as DeadLetterSink

__all__ = ["TRANSIENT_ERRORS", "BatchProcessor", "BatchStats", "DeadLetter", "Record"]

# StaleBatch, Fenced, Contended: another worker committed or claimed a partition meanwhile
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError, OSError, asyncio.TimeoutError, RedisConnectionError, RedisTimeoutError,
    StaleBatch, Fenced, Contended)


class _Segment:
    """Records up to an anchor crossing: applied (and committed) together."""

    __slots__ = ("items", "last_of_user", "last_off", "rejected", "unconfirmed", "wm")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.last_off: dict[int, int] = {}
        self.wm: dict[int, int] = {}
        self.rejected: dict[int, dict[str, int]] = {}  # counters, by partition
        self.last_of_user: dict[str, int] = {}
        self.unconfirmed: dict[int, str] = {}  # partitions whose unconfirmed records changed

    def count(self, p: int, name: str) -> None:
        cnt = self.rejected.setdefault(p, {})
        cnt[name] = cnt.get(name, 0) + 1

    def commits(self, applied: dict[int, int]) -> list[Commit]:
        """Each partition's commit, checked against the offset the batch started from."""
        return [Commit(p, off, self.wm.get(p, -1), self.rejected.get(p, {}),
                       self.unconfirmed.get(p), applied.get(p, -1))
                for p, off in self.last_off.items()]


class BatchProcessor:
    def __init__(self, store: FeatureStore, dead_letters: DeadLetterSink,
                 allowed_types: frozenset[str] = DEFAULT_EVENT_TYPES,
                 churn_horizon_days: int = 30, live: Live | None = None,
                 anchors: Anchors | None = None,
                 on_batch: Callable[[BatchStats], None] | None = None,
                 max_future_seconds: float = -1, clock_step_ms: int = DAY_MS,
                 clock_users: int = 1, lock: asyncio.Lock | None = None,
                 swept: dict[int, int] | None = None,
                 catch_up: Callable[[int, int, list[tuple[str, int]]], Awaitable[Any]] | None
                 = None) -> None:
        self.store = store
        self.dead_letters = dead_letters
        self.allowed_types = allowed_types
        self.horizon = churn_horizon_days
        self.live = live or Live(store, _no_alerts, TierPolicy(), AlertGate(),
                                 churn_horizon_days)
        self.anchors = anchors
        self.on_batch = on_batch  # metrics
        # batches and sweep chunks never overlap (the lock is the Sweeper's too)
        self.lock = lock if lock is not None else asyncio.Lock()
        self.max_future = max_future_seconds  # < 0: no bound (tests, replays of the future)
        self.clock_step, self.clock_users = clock_step_ms, clock_users
        self._applied: dict[int, int] | None = None
        self._anchor: dict[int, int] | None = None
        self._guards: dict[int, ClockGuard] = {}  # each partition's clock (core.clock)
        self._stale = False  # on_rebalance: reload the above before the next batch
        # the anchor each partition's sweeper has reached (shared with the Sweeper), and
        # who rescores a user whose newest event is before it (``Sweeper.catch_up``)
        self.swept: dict[int, int] = swept if swept is not None else {}
        self.catch_up = catch_up
        self.recovery: Any = None  # stream.worker.recovery.Recovery: state loss detected, rebuilt
        keys = getattr(store, "keys", None)
        self.foreign = keys.foreign if keys is not None and keys.cluster else None

    def on_rebalance(self) -> None:
        """Forget cached offsets and clocks: another worker may have moved them. Takes
        effect at the next batch: a rebalance callback may run while a batch is under way
        (which keeps the view it started with)."""
        self._stale = True

    def _forget(self) -> None:
        self._applied = None
        self._anchor = None
        self._guards = {}
        self.swept.clear()
        self._stale = False

    async def process_until_done(self, records: Sequence[Record],
                                 on_retry: Callable[[BaseException, float], None] | None = None,
                                 first_delay: float = 0.2, max_delay: float = 10.0) -> BatchStats:
        """:meth:`process`, retried with backoff while Redis (or the DLQ) is unreachable.

        Safe to repeat: a batch whose state already landed comes back as redelivered
        (counted once, rescored); only DLQ messages and alerts may be sent twice.
        """
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
        async with self.lock:
            started = time.perf_counter()
            stats = await (self._process(records) if self.recovery is None
                           else self.recovery.run(self._process, records))
            stats.seconds = time.perf_counter() - started
        if self.on_batch is not None:
            self.on_batch(stats)
        return stats

    async def _process(self, records: Sequence[Record]) -> BatchStats:
        applied, anchor = await self._load()
        allowed, foreign = self.allowed_types, self.foreign
        latest = latest_allowed_ms(self.max_future)
        stats = BatchStats(records=len(records))
        dead: list[DeadLetter] = []
        segments: list[tuple[_Segment, list[tuple[int, int]]]] = []
        seg = _Segment()
        for rec in records:
            p = rec.partition
            ev = parse_event(rec.value, allowed, latest_ms=latest) \
                if rec.value is not None else TOMBSTONE
            if foreign is not None and not isinstance(ev, Rejected) and foreign(ev.user_id, p):
                ev = FOREIGN  # (cluster placement: state/keys.py)
            fresh = rec.offset > applied.get(p, -1)
            if not fresh:
                stats.skipped += 1  # re-read after a crash or rebalance
            if isinstance(ev, Rejected):
                if fresh:
                    seg.last_off[p] = rec.offset
                    dead.append(DeadLetter(rec, ev.reason))
                    stats.reasons[ev.reason] = stats.reasons.get(ev.reason, 0) + 1
                    seg.count(p, "rejected")
                    seg.count(p, "rejected:" + ev.reason)
                continue
            t = self._tick(seg, p, ev.time_ms, ev.user_id, fresh)
            a = anchor.get(p)
            if a is None:  # the partition's first event: its clock starts that day
                anchor[p] = a = first_anchor(t)
                await self.store.set_clock(f"a:{p}", a)
                await self.store.set_clock(f"f:{p}", a)  # where it started (label warm-up)
            if t > a + DAY_MS and self.anchors is not None:  # (due_anchors is not empty)
                # apply what came before, then run the anchors this event passes
                crossed = due_anchors(a, t)
                segments.append((seg, [(p, x) for x in crossed]))
                seg = _Segment()
                anchor[p] = crossed[-1]
            if fresh:
                seg.last_off[p] = rec.offset
            if t > seg.wm.get(p, -1):
                seg.wm[p] = t
                if t > stats.newest.get(p, -1):
                    stats.newest[p] = t
            seg.last_of_user[ev.user_id] = len(seg.items)
            seg.items.append(Item(ev, p, rec.offset, False))
        segments.append((seg, []))
        if dead:
            stats.rejected = len(dead)
            await self.dead_letters(dead)  # delivered before the batch commits
        for seg, crossings in segments:
            await self._apply(seg, stats)
            for p, a in crossings:
                stats.add_anchor(await self.anchors.run(p, a))  # type: ignore[union-attr]
        return stats

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

    def _tick(self, seg: _Segment, p: int, t: int, user: str, fresh: bool) -> int:
        """The partition's clock after an event at ``t`` (core.clock); records held ahead
        of it are counted and kept with the segment's commit."""
        g = self._guards.get(p)
        if g is None:
            g = self._guards[p] = ClockGuard(self.clock_step, self.clock_users)
        if not fresh and g.clock is not None:
            # re-read after a crash or a rebalance: the guard, loaded from Redis, already
            # holds its effect; observed again, a record the clock had since come near
            # would move the clock where the first reading never did
            return g.clock
        changes = g.changes
        clock = g.observe(t, user)
        if g.changes != changes:
            seg.unconfirmed[p] = g.dumps()
        if fresh and t - clock > g.step:
            seg.count(p, "clock:unconfirmed")
        return clock

    async def _apply(self, seg: _Segment, stats: BatchStats) -> None:
        if not seg.items and not seg.last_off:
            return
        items = seg.items
        for i in seg.last_of_user.values():
            items[i] = items[i]._replace(want_state=True)
        started = time.perf_counter()
        assert self._applied is not None
        results = await self.store.apply(items, seg.commits(self._applied))
        stats.redis_seconds["apply"] = stats.redis_seconds.get("apply", 0.0) + (
            time.perf_counter() - started)
        for p, off in seg.last_off.items():
            self._applied[p] = max(off, self._applied.get(p, -1))
        statuses = stats.statuses
        todo = []
        types = stats.types
        for it, res in zip(items, results, strict=True):
            st = res.status
            statuses[st] = statuses.get(st, 0) + 1
            if st < DUPLICATE:  # applied, late, late outside the window: newly consumed
                tname = it.event.event_type
                types[tname] = types.get(tname, 0) + 1
            if res.aggregates is not None:
                todo.append((it.event.user_id, it.partition, res.aggregates))
        # A user whose newest event is before the partition's last sweep (every event of
        # theirs arrived late) is scored as that sweep would have: at its anchor, or
        # churned at the user's own churn anchor. Otherwise the result would depend on
        # whether the sweep or the late batch ran first.
        behind: dict[int, list[tuple[str, int]]] = {}
        if self.catch_up is not None and self.swept:
            keep = []
            for uid, p, agg in todo:
                s = self.swept.get(p)
                if s is not None and agg.now_ms < s:
                    behind.setdefault(p, []).append((uid, agg.last_ms))
                else:
                    keep.append((uid, p, agg))
            todo = keep
        rs = await self.live.rescore(todo)
        stats.users_scored += rs.scored
        stats.alerts += rs.alerts
        for p, users in behind.items():
            assert self.catch_up is not None
            caught = await self.catch_up(p, self.swept[p], users)
            stats.users_scored += caught.users
            stats.alerts += caught.alerts


async def _no_alerts(alerts: Sequence[tuple[bytes, bytes]]) -> None:
    """Default alert sink of a processor built without one (tests, evaluation)."""
