"""One batch of raw Kafka records -> validated, deduped state in Redis, features, scores.

Free of faust: the faust agent (:mod:`stream.worker`) hands batches from
``stream.take_events`` to :meth:`BatchProcessor.process`; tests and benchmarks
call it directly. Per batch there is one Redis round trip (a MULTI/EXEC holding
one script per event, the batch's counters, and the previous batch's scores).

Exactly-once effect on state under at-least-once delivery: records at or below
a partition's applied offset (read from Redis when a partition is assigned)
are skipped, the per-user script rejects re-applied offsets, and event ids
dedupe true duplicates.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from core.events import DEFAULT_EVENT_TYPES, Rejected, parse_event
from core.features import features_at
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
        self.pending_scores: list[tuple[str, Score]] = []
        self._lock = asyncio.Lock()  # keeps batch and flush writes in order

    def on_rebalance(self) -> None:
        """Forget cached applied offsets: another worker may have moved them."""
        self._applied = None

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
            if rec.offset <= applied.get(p, -1):
                stats.skipped += 1
                continue
            last_off[p] = rec.offset
            ev = parse_event(rec.value, allowed)
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
        if not last_off:
            return stats
        for i in last_of_user.values():
            items[i] = items[i]._replace(want_state=True)
        if dead:
            stats.rejected = len(dead)
            await self.dead_letters(dead)  # delivered before the batch commits
        commits = [Commit(p, off, wm.get(p, -1), rejected.get(p, {}))
                   for p, off in last_off.items()]
        async with self._lock:
            results = await self.store.apply(items, commits, self.pending_scores)
            self.pending_scores = []
        for p, off in last_off.items():
            applied[p] = off
        statuses = stats.statuses
        scores = self.pending_scores
        for it, res in zip(items, results, strict=True):
            statuses[res.status] = statuses.get(res.status, 0) + 1
            if res.state is not None:
                feats = features_at(res.state)
                risk = recency_frequency_risk(feats, self.horizon)
                scores.append((it.event.user_id, Score(risk, res.state.last_ms, RULE_NAME)))
        stats.users_scored = len(scores)
        return stats

    async def flush(self) -> None:
        """Write scores held for the next batch now (the stream went idle)."""
        async with self._lock:
            if self.pending_scores:
                await self.store.apply((), (), self.pending_scores)
                self.pending_scores = []
