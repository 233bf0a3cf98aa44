"""The feature matrix of many users (core/feature_matrix.py) equals the per-user dicts
bit for bit, and the linear scorer gives the same risks and reasons from either."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.candidates import platt
from core.champion import Champion
from core.feature_matrix import SOURCE_NAMES, FeatureRows, feature_matrix
from core.features import DAY_MS, window_aggregates
from core.long_range import scoring_features
from core.model import VALUE_INPUT_NAMES
from core.scoring import score_rows
from tests.unit.test_champion import stream
from tests.unit.test_features import _run, buyer_log, user_log

logs = st.lists(user_log() | buyer_log(), min_size=1, max_size=4)


@settings(max_examples=100, deadline=None)
@given(logs, st.lists(st.integers(0, 400 * DAY_MS), min_size=4, max_size=4))
def test_rows_equal_the_per_user_features_exactly(users, later) -> None:  # type: ignore[no-untyped-def]
    aggs = []
    for evs, dt in zip(users, later, strict=False):
        state = _run(evs)[0]
        aggs.append(window_aggregates(state, state.last_ms + dt))
    m = feature_matrix(aggs)
    assert m.shape == (len(aggs), len(SOURCE_NAMES))
    rows = FeatureRows(m)
    for i, agg in enumerate(aggs):
        want = scoring_features(agg)
        assert tuple(want) == SOURCE_NAMES
        assert rows[i] == want  # ==, not close: the same operations in the same order
    assert rows.dicts() == [scoring_features(a) for a in aggs]


def test_empty() -> None:
    assert feature_matrix([]).shape == (0, len(SOURCE_NAMES))


@pytest.fixture(scope="module")
def champion() -> Champion:
    ch = Champion(window=1000, every=250, min_labels=200, batch_every_days=1)
    for i, (f, y, rel) in enumerate(stream(2500, seed=2)):
        ch.learn(f, y, rel, user=f"u{i % 500}")
    return ch


@pytest.mark.parametrize("name", ["model:logreg", "stacked:logreg", "recency", "blend"])
def test_scores_from_rows_equal_scores_from_dicts(champion: Champion, name: str) -> None:
    """A served champion (calibrated; the linear ones from the matrix, the others from
    dicts built from it): the same risks and reasons either way."""
    ch = champion
    ch.champion = name
    ch.calibration = platt(np.fromiter(ch.scores[name], float),
                           np.fromiter(ch.labels, float), ch.transform(name))
    served = ch.scorer(7)
    assert hasattr(getattr(served, "inner", served), "score_rows") == name.endswith("logreg")
    names = (*SOURCE_NAMES, *(VALUE_INPUT_NAMES if served.value_inputs else ()))
    users = [{n: f[n] for n in names} for f, _, _ in stream(200, seed=9)]
    rows = FeatureRows(np.array([[f[n] for n in names] for f in users]), names)
    risks, why = score_rows(served, rows)
    assert (risks, why) == served.score(users)
    assert sum(1 for r in why if r) >= 10
