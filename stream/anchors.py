"""Daily anchors: label snapshots and their release, in event time, per partition.

The one orchestration of labels (docs/design.md section 5), run by the live worker
(``stream/worker/processor.py``, over Redis) and by ``churnstream evaluate``
(``offline/evaluate.py``, over its in-memory book): they differ only in the store and
the value fits they pass. When a partition's event-time clock (its watermark) passes a
UTC midnight ``A`` (``core.labels.due_anchors``), everything up to the crossing event is
applied, then :meth:`Anchors.run` runs before any event later than ``A``:

1. snapshot a deterministic sample (``CHURN_LABEL_SAMPLE_RATE``) of the partition's
   users active in ``(A - H, A]`` (none in the first ``CHURN_LABEL_WARMUP_DAYS``), with
   their features and long-range inputs at ``A`` and their BG/NBD inputs under the fit
   serving at ``A`` (neutral before the first fit), as pending labels;
2. release the snapshots taken at ``t = A - H``: label 0 if the user has an event in
   ``(t, A]`` (their newest event is after ``t``: no event later than ``A`` has been
   applied yet), else 1. Both classes leave at ``t + H``, however early they settled;
3. drop the released snapshots and mark ``A`` done.

A crash anywhere repeats the anchor with identical results (no event after ``A`` was
applied); a repeated release carries the same ``(partition, t, i)`` ids, which the
learner uses to skip what it has already learned.

>>> import asyncio
>>> from core.labels import DAY_MS
>>> class Book:  # the smallest store: user "u" was last seen on day 10
...     def __init__(self): self.pending = {}
...     async def clock(self): return {}
...     async def active_users(self, p, lo, hi): return [("u", 10 * DAY_MS)]
...     async def aggregates_at(self, users, now, p): return [None] * len(users)
...     async def put_snapshots(self, p, a, rows): self.pending[a] = rows
...     async def snapshots(self, p, a): return [("u", [0.0] * 17)] if a == 10 * DAY_MS else []
...     async def last_events(self, users, p): return [10 * DAY_MS]
...     async def finish_anchor(self, p, a, released, counters): pass
>>> out = []
>>> async def sink(releases): out.extend(releases)
>>> st = asyncio.run(Anchors(Book(), sink, horizon_days=30).run(0, 40 * DAY_MS))
>>> [(r.user_id, r.t_ms // DAY_MS, r.label, r.release_ms // DAY_MS) for r in out]
[('u', 10, 1, 40)]
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import orjson

from core.features import FEATURE_NAMES, Aggregates
from core.labels import DAY_MS, Example, sampled
from core.long_range import LONG_RANGE_NAMES, scoring_features
from core.model import VALUE_INPUT_NAMES
from core.value import bgnbd_inputs, summary_arrays

_NF = len(FEATURE_NAMES)
_NV = _NF + len(VALUE_INPUT_NAMES)


class Release(NamedTuple):
    """One labelled snapshot leaving for the learner (``training.examples``)."""

    user_id: str
    partition: int
    t_ms: int  # the anchor of the snapshot
    i: int  # its position among the anchor's releases (repeat detection)
    n: int
    row: Sequence[float]  # REASON_NAMES order: the 17, the BG/NBD inputs, the long-range
    label: int
    release_ms: int  # t + H

    def inputs(self) -> dict[str, float]:
        """The row by name (snapshots from before the later columns have only the 17)."""
        row = self.row
        out = dict(zip(FEATURE_NAMES, row[:_NF], strict=True))
        if len(row) > _NF:
            out.update(zip(VALUE_INPUT_NAMES, row[_NF:_NV], strict=True))
        if len(row) > _NV:
            out.update(zip(LONG_RANGE_NAMES, row[_NV:], strict=True))
        return out

    def example(self) -> Example:
        return Example(self.user_id, self.t_ms, self.inputs(), self.label, self.release_ms)

    def message(self) -> bytes:
        """The ``training.examples`` message (read by ``LearnerState.learn``)."""
        row = self.row
        body: dict[str, Any] = {
            "user_id": self.user_id, "partition": self.partition, "t": self.t_ms, "i": self.i,
            "n": self.n, "features": dict(zip(FEATURE_NAMES, row[:_NF], strict=True)),
            "label": self.label, "release": self.release_ms}
        if len(row) > _NF:
            body["value"] = dict(zip(VALUE_INPUT_NAMES, row[_NF:_NV], strict=True))
        if len(row) > _NV:
            body["long"] = dict(zip(LONG_RANGE_NAMES, row[_NV:], strict=True))
        return orjson.dumps(body)


TrainingSink = Callable[[Sequence[Release]], Awaitable[None]]


class AnchorStore(Protocol):
    """What an anchor reads and writes (``state.store.FeatureStore`` has it all)."""

    async def clock(self) -> dict[str, int]: ...
    async def active_users(self, partition: int, after_ms: float, until_ms: float
                           ) -> list[tuple[str, int]]: ...
    async def aggregates_at(self, user_ids: Sequence[str], now_ms: int,
                            partition: int | None = None) -> list[Aggregates | None]: ...
    async def put_snapshots(self, partition: int, anchor_ms: int,
                            rows: Sequence[tuple[str, Sequence[float]]]) -> None: ...
    async def snapshots(self, partition: int, anchor_ms: int
                        ) -> list[tuple[str, list[float]]]: ...
    async def last_events(self, user_ids: Sequence[str],
                          partition: int | None = None) -> list[int | None]: ...
    async def finish_anchor(self, partition: int, anchor_ms: int, released_anchor_ms: int,
                            counters: dict[str, int]) -> None: ...


class ValueSource(Protocol):
    """The BG/NBD fit serving at an anchor (``state.value_model.ValueModel`` live,
    ``offline.value_fits.ValueTrack`` in ``evaluate``)."""

    async def at_anchor(self, partition: int, anchor_ms: int) -> None: ...
    def inputs(self, aggs: list[Aggregates]) -> np.ndarray: ...


class NeutralValue:
    """No fit: the neutral BG/NBD inputs (``core.value.bgnbd_inputs`` of None)."""

    def __init__(self, horizon_days: int) -> None:
        self.horizon = horizon_days

    async def at_anchor(self, partition: int, anchor_ms: int) -> None:
        return None

    def inputs(self, aggs: list[Aggregates]) -> np.ndarray:
        return bgnbd_inputs(None, self.horizon, *summary_arrays(aggs))


@dataclass
class AnchorStats:
    snapshots: int = 0
    released: int = 0
    churned_labels: int = 0


class Anchors:
    def __init__(self, store: AnchorStore, training: TrainingSink, horizon_days: int = 30,
                 sample_rate: float = 1 / 30, chunk: int = 2000, warmup_days: int = 0,
                 value: ValueSource | None = None) -> None:
        self.store = store
        self.value: ValueSource = value or NeutralValue(horizon_days)
        self.training = training
        self.h_ms = horizon_days * DAY_MS
        self.rate = sample_rate
        self.chunk = chunk
        self.warmup_ms = warmup_days * DAY_MS

    async def run(self, partition: int, anchor_ms: int) -> AnchorStats:
        out = AnchorStats()
        out.snapshots = await self._snapshot(partition, anchor_ms)
        releases = await self._release(partition, anchor_ms)
        out.released = len(releases)
        out.churned_labels = sum(r.label for r in releases)
        if releases:
            await self.training(releases)
        await self.store.finish_anchor(partition, anchor_ms, anchor_ms - self.h_ms, {
            "snapshots": out.snapshots, "released": out.released,
            "released_label_1": out.churned_labels, "anchors": 1})
        return out

    async def _snapshot(self, partition: int, anchor_ms: int) -> int:
        store = self.store
        start = (await store.clock()).get(f"f:{partition}") if self.warmup_ms else None
        if start is not None and anchor_ms < start + self.warmup_ms:
            sample: list[str] = []  # warm-up: the feature windows are still truncated
        else:
            active = await store.active_users(partition, anchor_ms - self.h_ms, anchor_ms)
            sample = [u for u, _ in active if sampled(u, anchor_ms, self.rate)]
        await self.value.at_anchor(partition, anchor_ms)  # the fit serving on this day
        rows: list[tuple[str, Sequence[float]]] = []
        for i in range(0, len(sample), self.chunk):
            part = sample[i:i + self.chunk]
            aggs = await store.aggregates_at(part, anchor_ms, partition)
            found = [(uid, agg) for uid, agg in zip(part, aggs, strict=True) if agg is not None]
            extra = self.value.inputs([a for _, a in found]).tolist() if found else []
            for j, (uid, agg) in enumerate(found):
                f = scoring_features(agg)
                rows.append((uid, [f[n] for n in FEATURE_NAMES] + extra[j]
                             + [f[n] for n in LONG_RANGE_NAMES]))
        await store.put_snapshots(partition, anchor_ms, rows)
        return len(rows)

    async def _release(self, partition: int, anchor_ms: int) -> list[Release]:
        t = anchor_ms - self.h_ms
        snaps = await self.store.snapshots(partition, t)
        lasts = await self.store.last_events([u for u, _ in snaps], partition)
        n = len(snaps)
        return [Release(uid, partition, t, i, n, row,
                        0 if last is not None and last > t else 1, anchor_ms)
                for i, ((uid, row), last) in enumerate(zip(snaps, lasts, strict=True))]
