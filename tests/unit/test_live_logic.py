"""Scorers against River, tier decisions without storms, learner repeats, and the
processor's anchors and sweeps over the in-memory store (no services)."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from core.features import FEATURE_NAMES
from core.model import make_pipeline, model_inputs, reasons
from core.scoring import LinearScorer, PipelineScorer, RuleScorer, make_scorer
from core.settings import Settings
from core.tiers import ALL_TIERS, AlertGate, TierPolicy, decide
from state.memory_store import MemoryFeatureStore
from stream.anchors import Anchors, Release
from stream.learner.state import new_state
from stream.worker.live import Live
from stream.worker.processor import BatchProcessor, DeadLetter, Record
from stream.worker.sweeper import Sweeper

DAY = 86_400_000


def random_features(rng: random.Random) -> dict[str, float]:
    f = {n: rng.random() * rng.choice([1, 5, 30, 300]) for n in FEATURE_NAMES}
    for n in ("purchase_ratio", "activity_ratio_15d", "brand_concentration_ratio",
              "cart_abandon_ratio"):
        f[n] = rng.random()
    f["activity_trend"] = rng.uniform(-1, 1)
    return f


def trained(n: int = 400, seed: int = 1):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    m = make_pipeline("logreg", lr=0.05)
    for _ in range(n):
        f = random_features(rng)
        m.learn_one(model_inputs(f), f["days_since_last_event"] > 10 or rng.random() < 0.1)
    return m


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_linear_scorer_equals_river(seed: int) -> None:
    m = trained()
    scorer = LinearScorer(m, "model:logreg", 7)
    rng = random.Random(seed)
    feats = [random_features(rng) for _ in range(20)]
    risks, why = scorer.score(feats)
    for f, risk, rs in zip(feats, risks, why, strict=True):
        assert abs(risk - m.predict_proba_one(model_inputs(f))[True]) < 1e-12
        want = reasons(m, f, {}, k=3)  # the one-user reference in core.model
        assert [FEATURE_NAMES[i] for i, _ in rs] == [r.feature for r in want]
        assert all(abs(c - r.contribution) < 1e-9 for (_, c), r in zip(rs, want, strict=True))


def test_make_scorer_cold_start_and_generic_pipelines() -> None:
    m = trained()
    assert isinstance(make_scorer(m, "logreg", 3, 99, 100, 30), RuleScorer)
    assert isinstance(make_scorer(None, "logreg", 0, 0, 0, 30), RuleScorer)
    s = make_scorer(m, "logreg", 3, 100, 100, 30)
    assert isinstance(s, LinearScorer) and (s.name, s.version) == ("model:logreg", 3)
    arf = make_pipeline("arf", n_models=2)
    rng = random.Random(2)
    for _ in range(50):
        f = random_features(rng)
        arf.learn_one(model_inputs(f), f["days_since_last_event"] > 10)
    g = make_scorer(arf, "arf", 4, 100, 10, 30)
    assert isinstance(g, PipelineScorer)
    risks, why = g.score([random_features(rng)])
    assert 0 <= risks[0] <= 1 and all(c > 0 for _, c in why[0])


def test_a_user_hovering_at_a_boundary_does_not_storm() -> None:
    """100 rescores a day for 10 days around the critical boundary (5 % +- 0.5 %):
    inside the hysteresis margin nothing moves after the first tier."""
    p, gate = TierPolicy(margin=0.01), AlertGate(per_day=3)
    rng = random.Random(3)
    rec, alerts = None, 0
    for i in range(1000):
        d = decide(rec, 0.05 + rng.uniform(-0.005, 0.005), i * DAY // 100, p, gate)
        if d is not None:
            rec, alerted = d
            alerts += alerted
    assert rec is not None and alerts == 0
    # wide swings: bounded by the per-day limit
    rec, per_day = None, {}
    for i in range(1000):
        now = i * DAY // 100
        d = decide(rec, 0.0 if i % 2 else 0.9, now, p, gate)
        if d is not None:
            rec, alerted = d
            per_day[now // DAY] = per_day.get(now // DAY, 0) + alerted
    assert max(per_day.values()) == 3


def test_learner_skips_repeated_releases() -> None:
    state = new_state(Settings())

    def ex(p: int, t: int, i: int, label: int = 1) -> bytes:
        return json.dumps({"partition": p, "t": t, "i": i, "label": label,
                           "features": {n: 1.0 for n in FEATURE_NAMES}}).encode()

    stream = [ex(0, 5, 0), ex(0, 5, 1), ex(1, 5, 0), ex(0, 5, 0), ex(0, 5, 1), ex(0, 5, 2),
              ex(0, 6, 0), ex(0, 5, 2)]  # a worker crash repeats partition 0's release
    for off, raw in enumerate(stream):
        state.learn(raw, off)
    assert (state.examples, state.repeats) == (5, 3)
    assert state.positions == {0: (6, 0), 1: (5, 0)}


def _proc(store: MemoryFeatureStore, rate: float = 1.0
          ) -> tuple[BatchProcessor, list[bytes], list[bytes], Sweeper]:
    alerts: list[bytes] = []
    training: list[bytes] = []

    async def to_alerts(msgs: Sequence[tuple[bytes, bytes]]) -> None:
        assert all(json.loads(v)["user_id"].encode() == k for k, v in msgs)
        alerts.extend(v for _, v in msgs)

    async def to_training(msgs: Sequence[Release]) -> None:
        training.extend(r.message() for r in msgs)  # what the worker sends

    async def to_dlq(dead: Sequence[DeadLetter]) -> None:
        pass

    live = Live(store, to_alerts, TierPolicy(margin=0.0), AlertGate(per_day=10), 3)
    proc = BatchProcessor(store, to_dlq, churn_horizon_days=3, live=live,
                          anchors=Anchors(store, to_training, 3, rate))
    sweeper = Sweeper(store, live, proc.lock, 3, chunk=2, swept=proc.swept)
    proc.catch_up = sweeper.catch_up
    return proc, alerts, training, sweeper


def _ev(user: str, t: int, i: int) -> bytes:
    return json.dumps({"event_id": f"e{i}", "user_id": user, "event_type": "view",
                       "event_time": t}).encode()


def test_anchors_sweeps_churn_and_alerts_in_memory() -> None:
    """H = 3 days: a stays active, b stops after day 0; the sweeper climbs b up the
    ranking, churns it at its own churn anchor, and every tier change is one alert."""
    store = MemoryFeatureStore()
    proc, alerts, training, sweeper = _proc(store)
    t0 = 20_000 * DAY
    evs = [("a", t0 + 3_600_000 + d * DAY) for d in range(8)]
    evs.insert(1, ("b", t0 + 7_200_000))
    evs.insert(2, ("c", t0 + 8_000_000))

    async def run() -> list[tuple[int, float]]:
        seen = []
        for i, (u, t) in enumerate(sorted(evs, key=lambda e: e[1])):
            await proc.process([Record(0, i, u.encode(), _ev(u, t, i))])
            for p, a in await sweeper.due({0}):
                await sweeper.sweep(p, a)
                if "b" in store.ranked:
                    seen.append((store.scores["b"].as_of_ms, store.scores["b"].risk))
        return seen

    seen = asyncio.run(run())
    stats = asyncio.run(store.stats())
    assert stats["anchors"] == 7  # every midnight from t0 + 1d to t0 + 7d
    # b's risk grows at each sweep while it stays silent, until it churns
    assert [t for t, _ in seen] == [t0 + d * DAY for d in range(1, 4)]
    assert all(r1 < r2 for (_, r1), (_, r2) in itertools.pairwise(seen))
    released = [json.loads(m) for m in training]
    assert {(m["user_id"], m["t"]) for m in released if m["t"] == t0 + DAY} == {
        ("a", t0 + DAY), ("b", t0 + DAY), ("c", t0 + DAY)}
    assert {m["user_id"]: m["label"] for m in released if m["t"] == t0 + DAY} == {
        "a": 0, "b": 1, "c": 1}
    assert all(m["release"] == m["t"] + 3 * DAY for m in released)
    # b and c churn at their own churn anchor: first midnight more than H after their event
    score_b = store.scores["b"]
    assert score_b.as_of_ms == t0 + 4 * DAY and ALL_TIERS[store.tiers["b"].tier] == "churned"
    assert "b" not in store.ranked and "a" in store.ranked
    assert asyncio.run(store.tier_counts())["churned"] == 2
    assert len(alerts) == stats["alerts"] == sum(
        v for k, v in stats.items() if k.startswith("transition:"))
    assert any(json.loads(a)["user_id"] == "b" and json.loads(a)["to"] == "churned"
               for a in alerts)


def test_a_user_arriving_behind_the_sweep_is_scored_as_the_sweep_would() -> None:
    """H = 3 days. z's only events (day 0 and 5) arrive late, after the sweep of day 8
    or before it: either way z ends with the same score, at the same time, in the same
    place (y: silent since day 5 -> scored at the anchor; z0: churned at its own churn
    anchor), and both sit in the active or churned index as the sweep leaves them."""
    t0 = 20_000 * DAY
    base = [("a", t0 + d * DAY + 3_600_000) for d in range(9)]
    late = [("z0", t0 + 3_600_000), ("y", t0 + 5 * DAY + 60_000)]

    async def run(late_first: bool) -> MemoryFeatureStore:
        store = MemoryFeatureStore()
        proc, _, _, sweeper = _proc(store)
        order = late + base if late_first else base + late
        for i, (u, t) in enumerate(order):
            await proc.process([Record(0, i, u.encode(), _ev(u, t, i))])
            if late_first or i >= len(base) - 1:
                for p, a in await sweeper.due({0}):
                    await sweeper.sweep(p, a)
        for p, a in await sweeper.due({0}):
            await sweeper.sweep(p, a)
        return store

    early, after = asyncio.run(run(True)), asyncio.run(run(False))
    assert after.scores["y"].as_of_ms == t0 + 8 * DAY  # the sweep's anchor, not day 5
    assert after.scores["z0"].as_of_ms == t0 + 4 * DAY  # z0's churn anchor
    for u in ("y", "z0"):
        assert after.scores[u] == early.scores[u], u
        assert (u in after.ranked) == (u in early.ranked), u
    assert "z0" not in after.ranked and "y" in after.ranked
    assert asyncio.run(after.active_users(0, float("-inf"), t0 + 9 * DAY)) == asyncio.run(
        early.active_users(0, float("-inf"), t0 + 9 * DAY))


def test_absolute_tier_mode_in_the_api() -> None:
    from api import tier_bounds as ranking
    from core.tiers import rank_position

    store = MemoryFeatureStore()
    store.ranked = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.45, "e": 0.1}
    settings = Settings(tier_mode="absolute")  # critical >= 0.8, high >= 0.6, elevated >= 0.4
    got = asyncio.run(ranking.bounds(store, settings, 5))  # type: ignore[arg-type]
    assert got == {"critical": (0, 2), "high": (2, 3), "elevated": (3, 4), "low": (4, 5)}
    tiers = [rank_position(i, 5, settings.tier_policy(), r)[1]
             for i, r in enumerate(sorted(store.ranked.values(), reverse=True))]
    assert tiers == ["critical", "critical", "high", "elevated", "low"]
    assert asyncio.run(ranking.bounds(store, Settings(), 5)) == ranking.tier_bounds(  # type: ignore[arg-type]
        5, (0.05, 0.15, 0.30))


def test_learner_metrics_accept_undefined_quality() -> None:
    from prometheus_client import generate_latest

    from stream.learner.metrics import LearnerMetrics

    m = LearnerMetrics()
    m.checkpoint(3, "logreg", {"rocauc": None, "logloss": 0.5, "examples": 10.0})
    m.checkpoint(4, "logreg", {"rocauc": 0.75, "lift_at_5": 2.0})  # as ModelStore.meta gives
    text = generate_latest(m.registry).decode()
    assert "churn_model_rocauc 0.75" in text
    assert 'churn_model_info{pipeline="logreg",version="4"} 1.0' in text
    assert 'version="3"' not in text


def test_the_sweep_asks_for_the_next_chunk_before_scoring_this_one() -> None:
    """Within a hold of the lock, chunk j + 1's aggregates are requested before chunk j
    is scored, so Redis computes them while Python scores (scoring does not yield: a
    request only created, not started, waited for the scoring, and on a real Redis the
    two CPU times added up). Every user is still scored once."""
    store = MemoryFeatureStore()
    proc, _, _, sweeper = _proc(store)
    sweeper.chunk, sweeper.hold = 2, 3
    t0 = 20_000 * DAY
    log: list[tuple[str, str]] = []
    inner_aggs, inner_prepare = store.aggregates_at, sweeper.live.prepare

    async def aggregates_at(users, now_ms, partition=None):  # type: ignore[no-untyped-def]
        log.append(("ask", users[0]))
        return await inner_aggs(users, now_ms)

    def prepare(users, sweep=False):  # type: ignore[no-untyped-def]
        if users:
            log.append(("score", users[0][0]))
        return inner_prepare(users, sweep)

    store.aggregates_at = aggregates_at  # type: ignore[method-assign]
    sweeper.live.prepare = prepare  # type: ignore[method-assign]

    async def run() -> int:
        for i in range(9):
            u = f"u{i}"
            await proc.process([Record(0, i, u.encode(), _ev(u, t0 + 60_000 * i, i))])
        log.clear()
        out = await sweeper.sweep(0, t0 + 2 * DAY)
        return out.users

    assert asyncio.run(run()) == 9
    asked = [u for kind, u in log if kind == "ask"]
    scored = [u for kind, u in log if kind == "score"]
    assert sorted(asked) == sorted(scored) and len(scored) == 5  # chunks of 2: 5 of them
    for j, first in enumerate(scored):
        if j % 3 < 2 and j + 1 < len(scored):  # not the last chunk of a hold
            assert log.index(("ask", scored[j + 1])) < log.index(("score", first)), log
