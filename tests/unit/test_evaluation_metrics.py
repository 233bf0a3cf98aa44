"""core.evaluation against two independent references: the prequential window's
brute-force metrics (core.prequential) and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from core.evaluation import calibration, lift_curve, pr_auc, ranking_metrics, rocauc
from core.prequential import Prequential

# scores on a coarse grid so that ties are common
cases = st.lists(st.tuples(st.integers(0, 20).map(lambda i: i / 20), st.integers(0, 1)),
                 min_size=1, max_size=120)


def brute_ap(s: list[float], y: list[int]) -> float:
    pos = sum(y)
    total, prev_recall = 0.0, 0.0
    for thr in sorted(set(s), reverse=True):
        chosen = [yy for ss, yy in zip(s, y, strict=True) if ss >= thr]
        recall = sum(chosen) / pos
        total += (recall - prev_recall) * sum(chosen) / len(chosen)
        prev_recall = recall
    return total


@settings(max_examples=300, deadline=None)
@given(cases)
def test_matches_the_prequential_reference(pairs: list[tuple[float, int]]) -> None:
    s, y = [p for p, _ in pairs], [v for _, v in pairs]
    ref = Prequential(window=len(pairs))
    for p, v in pairs:
        ref.update(p, v)
    got = ranking_metrics(s, y)
    want = ref.summary()
    for key in ("rocauc", "precision_at_5", "recall_at_10", "lift_at_20", "precision_at_20"):
        assert (math.isnan(got[key]) and math.isnan(want[key])) or got[key] == want[key], key
    if sum(y):
        assert math.isclose(pr_auc(s, y), brute_ap(s, y), rel_tol=1e-12)
    assert math.isclose(got["brier"], sum((p - v) ** 2 for p, v in pairs) / len(pairs))


@settings(max_examples=150, deadline=None)
@given(cases)
def test_matches_scikit_learn(pairs: list[tuple[float, int]]) -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    s, y = np.array([p for p, _ in pairs]), np.array([v for _, v in pairs])
    if 0 < y.sum() < len(y):
        assert math.isclose(rocauc(s, y), roc_auc_score(y, s), rel_tol=1e-12)
        assert math.isclose(pr_auc(s, y), average_precision_score(y, s), rel_tol=1e-12)


def test_calibration_and_lift_curve_by_hand() -> None:
    s = [0.05, 0.15, 0.12, 0.95, 1.0, 0.5]
    y = [0, 1, 0, 1, 1, 0]
    rows = calibration(s, y, bins=10)
    assert [r["n"] for r in rows] == [1, 2, 0, 0, 0, 1, 0, 0, 0, 2]
    assert rows[9]["predicted"] == 0.975 and rows[9]["observed"] == 1.0
    assert math.isnan(rows[3]["predicted"])
    curve = lift_curve(s, y, points=2)  # top 3: 1.0, 0.95, 0.5 -> 2 of 3; base 1/2
    assert curve == [(0.5, 2 / 3 / 0.5), (1.0, 1.0)]
