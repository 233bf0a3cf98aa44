"""Rescoring users: features -> scorer -> stored score and rank -> tier -> alert.

One path for the worker (users touched by a batch, at their newest event) and the
sweeper (silent users, at an anchor). Per call: one round trip writes the scores
and returns each user's rank and stored tier; tier changes are decided by the
pure :func:`core.tiers.decide`, alerts go to ``risk.alerts`` (acknowledged by the
broker) and only then is the new tier stored, in a second round trip. Alerts are
therefore at least once: a crash between the two repeats them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from core.feature_matrix import SOURCE_NAMES, FeatureRows
from core.features import Aggregates
from core.model import VALUE_INPUT_NAMES, reason_rows
from core.scoring import RuleScorer, Scorer, score_rows
from core.settings import Settings
from core.tiers import ALL_TIERS, DAY_MS, AlertGate, Crossing, TierPolicy, decide
from core.timefmt import rfc3339
from state.codec import Score
from state.store import FeatureStore, Placed, ScoreWrite, TierChange
from state.value_model import ValueModel

AlertSink = Callable[[Sequence[tuple[bytes, bytes]]], Awaitable[None]]  # (user id, JSON)


@dataclass
class RescoreStats:
    scored: int = 0
    stale: int = 0  # a newer score was already stored
    changes: int = 0
    alerts: int = 0
    transitions: dict[tuple[str, str], int] = field(default_factory=dict)  # alerted changes
    redis_seconds: dict[str, float] = field(default_factory=dict)


class Live:
    """The current scorer, tier policy and alert gate of one worker."""

    def __init__(self, store: FeatureStore, alerts: AlertSink, policy: TierPolicy,
                 gate: AlertGate, horizon_days: int = 30, scorer: Scorer | None = None,
                 on_rescored: Callable[[RescoreStats], None] | None = None,
                 value: ValueModel | None = None) -> None:
        self.store = store
        self.alerts = alerts
        self.policy = policy
        self.gate = gate
        self.horizon = horizon_days
        self.scorer: Scorer = scorer or RuleScorer(horizon_days)
        self.loaded_version = 0
        self.means: dict[str, float] = {}
        self.on_rescored = on_rescored  # metrics
        # the BG/NBD fit, for a model that learned from the value inputs
        self.value = value or ValueModel(None, horizon_days)

    @classmethod
    def from_settings(cls, store: FeatureStore, alerts: AlertSink, settings: Settings,
                      on_rescored: Callable[[RescoreStats], None] | None = None,
                      value: ValueModel | None = None) -> Live:
        return cls(store, alerts, settings.tier_policy(), settings.alert_gate(),
                   settings.churn_horizon_days, on_rescored=on_rescored, value=value)

    async def rescore(self, users: Sequence[tuple[str, int, Aggregates]]) -> RescoreStats:
        """(user, partition, aggregates at the reference time) -> stored score and tier."""
        writes, feats = self.prepare(users)
        if not writes:
            return RescoreStats()
        started = time.perf_counter()
        placed = await self.store.write_scores(writes)
        return await self.finish(writes, feats, placed, time.perf_counter() - started)

    def prepare(self, users: Sequence[tuple[str, int, Aggregates]], sweep: bool = False
                ) -> tuple[list[ScoreWrite], FeatureRows]:
        """Features and scores (no I/O): the writes for :meth:`FeatureStore.write_scores`
        (``sweep``: users already in the active index with their newest event)."""
        if not users:
            return [], FeatureRows(np.empty((0, len(SOURCE_NAMES))))
        aggs = [agg for _, _, agg in users]
        feats = FeatureRows.of(aggs)  # one matrix (core/feature_matrix.py)
        scorer = self.scorer
        if scorer.value_inputs:
            feats = feats.with_columns(VALUE_INPUT_NAMES, self.value.inputs(aggs))
        risks, why = score_rows(scorer, feats)
        h_ms = self.horizon * DAY_MS
        writes = [ScoreWrite(uid, p, Score(risk, agg.now_ms, scorer.name, scorer.version, rs),
                             agg.last_ms, agg.now_ms - agg.last_ms > h_ms, not sweep)
                  for (uid, p, agg), risk, rs in zip(users, risks, why, strict=True)]
        return writes, feats

    async def finish(self, writes: Sequence[ScoreWrite], feats: FeatureRows,
                     placed: Sequence[Placed], write_seconds: float | None = None
                     ) -> RescoreStats:
        """Tier decisions from the written scores' ranks; alerts, then the new tiers."""
        stats = RescoreStats()
        if write_seconds is not None:
            stats.redis_seconds["write_scores"] = write_seconds
        try:
            await self._finish(writes, feats, placed, stats)
        finally:
            if self.on_rescored is not None:
                self.on_rescored(stats)
        return stats

    async def _finish(self, writes: Sequence[ScoreWrite], feats: FeatureRows,
                      placed: Sequence[Placed], stats: RescoreStats) -> None:
        changes: list[TierChange] = []
        alerts: list[tuple[bytes, bytes]] = []
        counters: dict[str, int] = {}
        absolute = self.policy.absolute
        at_text: dict[int, str] = {}
        for i, (w, pl) in enumerate(zip(writes, placed, strict=True)):
            if not pl.written:
                stats.stale += 1
                continue
            stats.scored += 1
            position = w.score.risk if absolute else pl.rank / max(1, pl.ranked)
            now = w.score.as_of_ms
            d = decide(pl.tier, position, now, self.policy, self.gate,
                       (now - w.last_ms) / DAY_MS, self.horizon)
            if d is None:
                continue
            rec, alerted = d
            crossing = Crossing(w.user_id, pl.tier.tier, rec.tier, w.score.risk, now) \
                if alerted and pl.tier is not None else None
            changes.append(TierChange(w.user_id, w.partition,
                                      pl.tier.tier if pl.tier is not None else None, rec,
                                      w.last_ms, crossing))
            if alerted:
                assert pl.tier is not None
                frm, to = ALL_TIERS[pl.tier.tier], ALL_TIERS[rec.tier]
                key = f"transition:{frm}:{to}"
                counters[key] = counters.get(key, 0) + 1
                stats.transitions[(frm, to)] = stats.transitions.get((frm, to), 0) + 1
                alerts.append((w.user_id.encode(), orjson.dumps({
                    "user_id": w.user_id, "from": frm, "to": to, "risk": w.score.risk,
                    "at": at_text.get(now) or at_text.setdefault(now, rfc3339(now)),
                    "at_ms": now, "scorer": w.score.scorer,
                    "model_version": w.score.version,
                    "reasons": reason_rows(w.score.reasons, feats[i], self.means)},
                    option=orjson.OPT_SERIALIZE_NUMPY)))
        if not changes:
            return
        stats.changes, stats.alerts = len(changes), len(alerts)
        if alerts:
            counters["alerts"] = len(alerts)
            await self.alerts(alerts)
        started = time.perf_counter()
        await self.store.write_tiers(changes, counters)
        stats.redis_seconds["write_tiers"] = time.perf_counter() - started


async def rescore_batch(live: Live, todo: list[tuple[str, int, Aggregates]], stats: Any,
                        swept: dict[int, int],
                        catch_up: Callable[[int, int, list[tuple[str, int]]], Awaitable[Any]]
                        | None) -> None:
    """Score a batch's users from their new state (``stats``: the batch's BatchStats).

    A user whose newest event is before the partition's last sweep (``swept``: every
    event of theirs arrived late) is scored as that sweep would have (``catch_up``, the
    Sweeper's): at its anchor, or churned at the user's own churn anchor. Otherwise the
    result would depend on whether the sweep or the late batch ran first."""
    behind: dict[int, list[tuple[str, int]]] = {}
    if catch_up is not None and swept:
        keep = []
        for uid, p, agg in todo:
            s = swept.get(p)
            if s is not None and agg.now_ms < s:
                behind.setdefault(p, []).append((uid, agg.last_ms))
            else:
                keep.append((uid, p, agg))
        todo = keep
    rs = await live.rescore(todo)
    stats.users_scored += rs.scored
    stats.alerts += rs.alerts
    for p, users in behind.items():
        assert catch_up is not None
        caught = await catch_up(p, swept[p], users)
        stats.users_scored += caught.users
        stats.alerts += caught.alerts
