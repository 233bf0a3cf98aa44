"""One batch of raw Kafka records -> validated, deduped state in Redis, features, scores.

Free of faust: the faust agent (:mod:`stream.worker`) hands batches from
``stream.take_events`` to :meth:`BatchProcessor.process`; tests and benchmarks
call it directly. Per batch there are two Redis round trips, both before the
batch is acknowledged to Kafka: one MULTI/EXEC holding one script per event
plus the batch's counters (it returns the new state of every touched user),
then one pipeline writing the scores computed from those states.

Exactly-once effect under at-least-once delivery: the per-user script rejects
re-applied (partition, offset) pairs but still returns the state, so a batch
re-read after a crash rescores its users; invalid records at or below a
partition's applied offset (read from Redis when a partition is assigned) are
not sent to the DLQ or counted again; event ids dedupe true duplicates.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.events import DEFAULT_EVENT_TYPES, Rejected, parse_event
from core.features import compute_features
from core.rules import RULE_NAME, recency_frequency_risk
from state.codec import Score
from state.store import Commit, FeatureStore, Item


class Record(NamedTuple):
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class DeadLetter(NamedTuple):
    record: Record
    reason: str

    def to_json(self, topic: str) -> bytes:
        """DLQ payload: reason, source position and the raw payload (text or base64)."""
        body: dict[str, object] = {"reason": self.reason, "topic": topic,
                                   "partition": self.record.partition,
                                   "offset": self.record.offset, "at": time.time()}
        try:
            body["raw"] = self.record.value.decode("utf-8")
        except UnicodeDecodeError:
            body["raw_b64"] = base64.b64encode(self.record.value).decode()
        return json.dumps(body, ensure_ascii=False).encode()


DeadLetterSink = Callable[[Sequence[DeadLetter]], Awaitable[None]]
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError, OSError, asyncio.TimeoutError, RedisConnectionError, RedisTimeoutError)


@dataclass
class BatchStats:
    records: int = 0
    skipped: int = 0
    rejected: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    users_scored: int = 0


class BatchProcessor:
    def __init__(self, store: FeatureStore, dead_letters: DeadLetterSink,
                 allowed_types: frozenset[str] = DEFAULT_EVENT_TYPES,
                 churn_horizon_days: int = 30) -> None:
        self.store = store
        self.dead_letters = dead_letters
        self.allowed_types = allowed_types
        self.horizon = churn_horizon_days
        self._applied: dict[int, int] | None = None

    def on_rebalance(self) -> None:
        """Forget cached applied offsets: another worker may have moved them."""
        self._applied = None

    async def process_until_done(self, records: Sequence[Record],
                                 on_retry: Callable[[BaseException, float], None] | None = None,
                                 first_delay: float = 0.2, max_delay: float = 10.0) -> BatchStats:
        """:meth:`process`, retried with backoff while Redis (or the DLQ) is unreachable.

        Safe to repeat: a batch whose state already landed comes back as redelivered
        (counted once, rescored); only DLQ messages may be sent twice.
        """
        delay = first_delay
        while True:
            try:
                return await self.process(records)
            except TRANSIENT_ERRORS as exc:
                self._applied = None  # re-read what landed before retrying
                if on_retry is not None:
                    on_retry(exc, delay)
                await asyncio.sleep(delay)
                delay = min(max_delay, delay * 2)

    async def process(self, records: Sequence[Record]) -> BatchStats:
        if self._applied is None:
            self._applied = await self.store.applied_offsets()
        applied = self._applied
        allowed = self.allowed_types
        stats = BatchStats(records=len(records))
        items: list[Item] = []
        dead: list[DeadLetter] = []
        last_off: dict[int, int] = {}
        wm: dict[int, int] = {}
        rejected: dict[int, dict[str, int]] = {}
        last_of_user: dict[str, int] = {}
        for rec in records:
            p = rec.partition
            ev = parse_event(rec.value, allowed)
            if rec.offset <= applied.get(p, -1):
                stats.skipped += 1  # re-read after a crash or rebalance
                if isinstance(ev, Rejected):
                    continue
            else:
                last_off[p] = rec.offset
            if isinstance(ev, Rejected):
                dead.append(DeadLetter(rec, ev.reason))
                cnt = rejected.setdefault(p, {})
                cnt["rejected"] = cnt.get("rejected", 0) + 1
                key = "rejected:" + ev.reason
                cnt[key] = cnt.get(key, 0) + 1
                continue
            if ev.time_ms > wm.get(p, -1):
                wm[p] = ev.time_ms
            last_of_user[ev.user_id] = len(items)
            items.append(Item(ev, p, rec.offset, False))
        if not items and not dead:
            return stats
        for i in last_of_user.values():
            items[i] = items[i]._replace(want_state=True)
        if dead:
            stats.rejected = len(dead)
            await self.dead_letters(dead)  # delivered before the batch commits
        commits = [Commit(p, off, wm.get(p, -1), rejected.get(p, {}))
                   for p, off in last_off.items()]
        results = await self.store.apply(items, commits)
        for p, off in last_off.items():
            applied[p] = off
        statuses = stats.statuses
        scores: list[tuple[str, Score]] = []
        for it, res in zip(items, results, strict=True):
            statuses[res.status] = statuses.get(res.status, 0) + 1
            agg = res.aggregates
            if agg is not None:
                feats = compute_features(agg)
                risk = recency_frequency_risk(feats, self.horizon)
                scores.append((it.event.user_id, Score(risk, agg.now_ms, RULE_NAME)))
        if scores:
            await self.store.apply((), (), scores)
        stats.users_scored = len(scores)
        return stats
