"""Daily anchors: label snapshots and their release, in event time, per partition.

When a partition's event-time clock (its watermark) passes a UTC midnight ``A``, the
processor applies everything up to the crossing event and then runs :meth:`Anchors.run`
before applying any event later than ``A``:

1. snapshot a deterministic sample (``CHURN_LABEL_SAMPLE_RATE``) of the partition's
   users active in ``(A - H, A]``, with their features and long-range inputs at ``A`` and
   their BG/NBD inputs under the fit serving at ``A`` (``state.value_model``; on a fit
   day the partition's value summaries are stored first; neutral before the first fit), as
   pending labels in Redis (so they survive restarts; at most H + 1 anchors are pending
   per partition);
2. release the snapshots taken at ``t = A - H`` to ``training.examples``: label 0 if
   the user has an event in ``(t, A]`` (their newest event is after ``t``: no event
   later than ``A`` has been applied yet), else 1. Both classes leave at ``t + H``;
3. drop the released snapshots and mark ``A`` done, atomically.

A crash anywhere repeats the anchor with identical results (no event after ``A`` was
applied); a repeated release carries the same ``(partition, t, i)`` ids, which the
learner uses to skip what it has already learned.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from core.features import FEATURE_NAMES
from core.labels import DAY_MS, sampled
from core.long_range import LONG_RANGE_NAMES, scoring_features
from core.model import VALUE_INPUT_NAMES
from state.store import FeatureStore
from state.value_model import ValueModel

TrainingSink = Callable[[Sequence[bytes]], Awaitable[None]]


@dataclass
class AnchorStats:
    snapshots: int = 0
    released: int = 0
    churned_labels: int = 0


class Anchors:
    def __init__(self, store: FeatureStore, training: TrainingSink, horizon_days: int = 30,
                 sample_rate: float = 1 / 30, chunk: int = 2000, warmup_days: int = 0,
                 value: ValueModel | None = None) -> None:
        self.store = store
        self.value = value or ValueModel(None, horizon_days)  # neutral inputs without one
        self.training = training
        self.h_ms = horizon_days * DAY_MS
        self.rate = sample_rate
        self.chunk = chunk
        self.warmup_ms = warmup_days * DAY_MS

    async def run(self, partition: int, anchor_ms: int) -> AnchorStats:
        store, out = self.store, AnchorStats()
        start = (await store.clock()).get(f"f:{partition}") if self.warmup_ms else None
        if start is not None and anchor_ms < start + self.warmup_ms:
            sample: list[str] = []  # warm-up: the feature windows are still truncated
        else:
            active = await store.active_users(partition, anchor_ms - self.h_ms, anchor_ms)
            sample = [u for u, _ in active if sampled(u, anchor_ms, self.rate)]
        await self.value.at_anchor(partition, anchor_ms)  # the fit serving on this day
        rows: list[tuple[str, list[float]]] = []
        for i in range(0, len(sample), self.chunk):
            part = sample[i:i + self.chunk]
            found = [(uid, agg) for uid, agg in zip(
                part, await store.aggregates_at(part, anchor_ms), strict=True) if agg is not None]
            extra = self.value.inputs([a for _, a in found]).tolist() if found else []
            for j, (uid, agg) in enumerate(found):
                f = scoring_features(agg)  # stored in REASON_NAMES order
                rows.append((uid, [f[n] for n in FEATURE_NAMES] + extra[j]
                             + [f[n] for n in LONG_RANGE_NAMES]))
        await store.put_snapshots(partition, anchor_ms, rows)
        out.snapshots = len(rows)
        t = anchor_ms - self.h_ms
        snaps = await store.snapshots(partition, t)
        lasts = await store.last_events([u for u, _ in snaps])
        messages = []
        nf, nv = len(FEATURE_NAMES), len(FEATURE_NAMES) + len(VALUE_INPUT_NAMES)
        for i, ((uid, feats), last) in enumerate(zip(snaps, lasts, strict=True)):
            label = 0 if last is not None and last > t else 1
            out.churned_labels += label
            body = {"user_id": uid, "partition": partition, "t": t, "i": i, "n": len(snaps),
                    "features": dict(zip(FEATURE_NAMES, feats[:nf], strict=True)),
                    "label": label, "release": anchor_ms}
            if len(feats) > nf:  # snapshots from before these columns have only the 17
                body["value"] = dict(zip(VALUE_INPUT_NAMES, feats[nf:nv], strict=True))
            if len(feats) > nv:
                body["long"] = dict(zip(LONG_RANGE_NAMES, feats[nv:], strict=True))
            messages.append(json.dumps(body).encode())
        out.released = len(messages)
        if messages:
            await self.training(messages)
        await store.finish_anchor(partition, anchor_ms, t, {
            "snapshots": out.snapshots, "released": out.released,
            "released_label_1": out.churned_labels, "anchors": 1})
        return out
