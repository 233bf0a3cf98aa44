"""Pure pieces of live risk: prequential metrics, tiers with hysteresis, labels, model, reasons."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.features import FEATURE_NAMES
from core.labels import DAY_MS, anchors_crossed, is_active, sampled
from core.model import contributions, make_pipeline, model_inputs, reasons
from core.prequential import Prequential
from core.tiers import CHURNED, TIERS, AlertGate, TierPolicy, next_tier, raw_tier

# ---- metrics against brute force ----------------------------------------------------------


def brute_auc(pairs: list[tuple[float, int]]) -> float:
    pos = [p for p, y in pairs if y]
    neg = [p for p, y in pairs if not y]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return wins / (len(pos) * len(neg))


@given(st.lists(st.tuples(st.sampled_from([0.1, 0.2, 0.5, 0.7, 0.9]) | st.floats(0, 1),
                          st.integers(0, 1)), min_size=2, max_size=80),
       st.integers(1, 100))
def test_metrics_equal_brute_force(pairs: list[tuple[float, int]], window: int) -> None:
    m = Prequential(window)
    for p, y in pairs:
        m.update(p, y)
    kept = pairs[-window:]
    ys = [y for _, y in kept]
    if 0 < sum(ys) < len(ys):
        assert math.isclose(m.rocauc(), brute_auc(kept), rel_tol=1e-12)
    else:
        assert math.isnan(m.rocauc())
    want_ll = -sum(math.log(min(1 - 1e-15, max(1e-15, p))) if y else
                   math.log(1 - min(1 - 1e-15, max(1e-15, p))) for p, y in kept) / len(kept)
    assert math.isclose(m.logloss(), want_ll, rel_tol=1e-12)
    n = math.ceil(0.2 * len(kept))
    top = sorted(kept, key=lambda py: -py[0])[:n]
    assert m.precision_at(0.2) == sum(y for _, y in top) / n
    if sum(ys):
        assert math.isclose(m.lift_at(0.2), (sum(y for _, y in top) / n) / (sum(ys) / len(ys)))
        assert m.recall_at(0.2) == sum(y for _, y in top) / sum(ys)
    assert m.seen == len(pairs)


def test_summary_names() -> None:
    m = Prequential(10)
    for i in range(10):
        m.update(i / 10, i % 2)
    assert {"rocauc", "logloss", "lift_at_5", "precision_at_10", "recall_at_20"} <= set(
        m.summary())

# ---- tiers --------------------------------------------------------------------------------


@given(st.floats(0, 1), st.sampled_from([None, *TIERS, CHURNED]))
def test_no_margin_means_raw_tier(pos: float, current: str | None) -> None:
    policy = TierPolicy(margin=0.0)
    assert next_tier(current, pos, policy) == raw_tier(pos, policy)


@settings(max_examples=300)
@given(st.sampled_from([0.05, 0.15, 0.30]), st.lists(st.floats(-1, 1), min_size=2, max_size=60),
       st.booleans())
def test_hovering_at_a_boundary_changes_tier_at_most_once(cut: float, noise: list[float],
                                                          absolute: bool) -> None:
    policy = TierPolicy(margin=0.02)
    if absolute:
        policy = TierPolicy(cuts=(0.8, 0.5, 0.3), margin=0.02, absolute=True)
        cut = {0.05: 0.8, 0.15: 0.5, 0.30: 0.3}[cut]
    tier = next_tier(None, cut + noise[0] * 0.019, policy)
    changes = 0
    for n in noise[1:]:
        new = next_tier(tier, cut + n * 0.019, policy)
        changes += new != tier
        tier = new
    assert changes <= 1


def test_tier_moves_and_validation() -> None:
    p = TierPolicy()
    assert [raw_tier(x, p) for x in (0.0, 0.1, 0.2, 0.9)] == list(TIERS)
    assert next_tier("low", 0.001, p) == "critical"  # jumps several tiers when clear
    assert next_tier("critical", 0.055, p) == "critical"  # within margin of its boundary
    assert next_tier("critical", 0.5, p) == "low"
    assert next_tier(CHURNED, 0.5, p) == "low"  # a churned user who returns is ranked again
    with pytest.raises(ValueError):
        TierPolicy(cuts=(0.3, 0.15, 0.05))
    with pytest.raises(ValueError):
        TierPolicy(margin=-1)
    gate = AlertGate(per_day=2, min_dwell_ms=1000)
    assert gate.allow(0, 0, 1000) and not gate.allow(2, 0, 10_000) and not gate.allow(0, 0, 999)

# ---- labels -------------------------------------------------------------------------------

H = 30 * DAY_MS


def test_anchor_helpers() -> None:
    assert list(anchors_crossed(0, DAY_MS)) == [DAY_MS]
    assert list(anchors_crossed(DAY_MS, DAY_MS)) == []
    rate = sum(sampled(f"u{i}", DAY_MS, 0.2) for i in range(20_000)) / 20_000
    assert 0.18 < rate < 0.22
    assert is_active(H, H, 30) and not is_active(0, H, 30) and not is_active(H + 1, H, 30)

# ---- model and reasons --------------------------------------------------------------------


def user(silent: float, active: float, rng: random.Random) -> dict[str, float]:
    f = {n: rng.random() for n in FEATURE_NAMES}
    f.update(days_since_last_event=silent, active_days_30d=active)
    return f


def test_default_pipeline_learns_recency_and_explains_with_it() -> None:
    rng = random.Random(0)
    m = make_pipeline()
    for _ in range(2000):
        churner = rng.random() < 0.3
        f = user(rng.uniform(10, 30) if churner else rng.uniform(0, 5), rng.uniform(1, 10), rng)
        m.learn_one(model_inputs(f), churner)
    risky, safe = user(25, 2, rng), user(0.5, 9, rng)
    assert m.predict_proba_one(model_inputs(risky))[True] > m.predict_proba_one(
        model_inputs(safe))[True]
    x = model_inputs(risky)
    contrib = contributions(m, x)
    assert contrib is not None
    scaler, lr = list(m.steps.values())
    scaled = scaler.transform_one(x)
    assert contrib == {k: lr.weights.get(k, 0.0) * v for k, v in scaled.items()}
    rs = reasons(m, risky, {n: 1.0 for n in FEATURE_NAMES})
    assert rs[0].feature == "days_since_last_event"
    assert [r.contribution for r in rs] == sorted((r.contribution for r in rs), reverse=True)
    assert all(r.contribution > 0 for r in rs) and "25.0 days" in rs[0].text


def test_registry_and_fallback_reasons() -> None:
    with pytest.raises(ValueError):
        make_pipeline("nope")
    m = make_pipeline("core.model:_logreg", lr=0.01)
    assert contributions(m, model_inputs(user(1, 1, random.Random(1)))) is not None
    arf = make_pipeline("arf", n_models=2)
    rng = random.Random(2)
    for _ in range(50):
        arf.learn_one(model_inputs(user(rng.uniform(0, 30), 3, rng)), rng.random() < 0.5)
    assert contributions(arf, model_inputs(user(1, 1, rng))) is None
    assert len(reasons(arf, user(25, 1, rng), {n: 0.0 for n in FEATURE_NAMES})) == 3
