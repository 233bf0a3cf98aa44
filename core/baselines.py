"""Baseline scorers for ``churnstream evaluate``: what a churn team would do without
churnstream (pure; scikit-learn is an optional extra).

- ``recency``: rank by days since the last event (not a probability).
- ``hgb``: a batch HistGradientBoosting classifier on the 17 raw features, retrained
  at every evaluation anchor on the training snapshots whose labels were fully
  observed before that anchor (the same snapshots the online model has learned).

>>> f = [{"days_since_last_event": 3.0}, {"days_since_last_event": 12.5}]
>>> recency_scores(f).tolist()
[3.0, 12.5]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from core.features import FEATURE_NAMES


def recency_scores(features: Sequence[Mapping[str, float]]) -> np.ndarray:
    return np.array([f["days_since_last_event"] for f in features], dtype=np.float64)


def feature_matrix(features: Sequence[Mapping[str, float]]) -> np.ndarray:
    return np.array([[f[n] for n in FEATURE_NAMES] for f in features],
                    dtype=np.float64).reshape(-1, len(FEATURE_NAMES))


def hgb_available() -> bool:
    try:
        import sklearn.ensemble  # noqa: F401
    except ImportError:
        return False
    return True


class BatchBaseline:
    """Gradient boosting refit from scratch on all examples seen so far (the most recent
    ``max_examples``), deterministic (``random_state``)."""

    name = "hgb"

    def __init__(self, max_examples: int = 300_000, min_examples: int = 200,
                 seed: int = 0) -> None:
        self.max_examples = max_examples
        self.min_examples = min_examples
        self.seed = seed
        self._x: list[list[float]] = []
        self._y: list[int] = []
        self.model: Any = None
        self.trained_on = 0

    def add(self, features: Mapping[str, float], label: int) -> None:
        self._x.append([features[n] for n in FEATURE_NAMES])
        self._y.append(label)

    def __len__(self) -> int:
        return len(self._y)

    def fit(self) -> bool:
        """Refit on the current examples; False (and no model) while too few or one class."""
        x, y = self._x[-self.max_examples:], self._y[-self.max_examples:]
        if len(y) < self.min_examples or len(set(y)) < 2:
            self.model = None
            return False
        from sklearn.ensemble import HistGradientBoostingClassifier
        from threadpoolctl import threadpool_limits

        # one OpenMP thread: next to a worker, an API or another fit on a 2-core machine,
        # OpenMP's busy-waiting threads made a 25 s evaluation take over 13 minutes
        with threadpool_limits(limits=1):
            self.model = HistGradientBoostingClassifier(random_state=self.seed).fit(
                np.asarray(x, dtype=np.float64), np.asarray(y))
        self.trained_on = len(y)
        return True

    def score(self, matrix: np.ndarray) -> np.ndarray | None:
        if self.model is None:
            return None
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return np.asarray(self.model.predict_proba(matrix)[:, 1], dtype=np.float64)
