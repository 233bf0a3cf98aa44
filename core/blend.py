"""The blend candidate: a logistic regression over the other candidates' scores (pure).

Stacking: the inputs are each component's transformed raw score (logit of a
probability, log1p of days) and log1p of the BG/NBD expected purchase days; the weights
are refit by Newton's method (a small L2 penalty) at every champion decision on the
window of prequential scores, and used for the examples after it, so the blend's own
prequential scores never use the labels they are judged on. Before its first fit it
scores 0.5 for everyone.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a, b = rng.random(4000), rng.random(4000)
>>> y = (rng.random(4000) < (a + b) / 2).astype(float)
>>> w = fit(np.column_stack([logit(a), logit(b), np.zeros(4000)]), y)
>>> bool(w[0] > 0.3 and w[1] > 0.3 and abs(w[0] - w[1]) < 0.15)
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from core.scoring import Reasons


def logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, float), 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def transform(raw: np.ndarray, kind: str) -> np.ndarray:
    raw = np.where(np.isnan(raw), 0.5, raw) if kind == "logit" else raw
    return logit(raw) if kind == "logit" else np.log1p(np.maximum(raw, 0.0))


def fit(g: np.ndarray, y: np.ndarray, l2: float = 1e-3, iters: int = 30) -> np.ndarray:
    """Weights (one per column, then the intercept) of P(y) = sigmoid(g w + b)."""
    x = np.column_stack([g, np.ones(len(g))])
    w = np.zeros(x.shape[1])
    reg = l2 * len(y) * np.eye(x.shape[1])
    reg[-1, -1] = 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -35, 35)))
        grad = x.T @ (p - y) + reg @ w
        h = (x * (p * (1 - p))[:, None]).T @ x + reg + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(h, grad)
        w -= np.clip(step, -5, 5)
        if np.abs(step).max() < 1e-9:
            break
    return w


def score(g: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    if w is None:
        return np.full(len(g), 0.5)
    return 1 / (1 + np.exp(-np.clip(g @ w[:-1] + w[-1], -35, 35)))


class BlendScorer:
    """The blend for a worker: every component's raw score, the weighted sum, and the
    reasons of the component that adds the most to this user's risk."""

    name = "blend"
    value_inputs = True

    def __init__(self, components: Sequence[tuple[Any, str]], w: np.ndarray | None,
                 version: int) -> None:
        self.components, self.w, self.version = components, w, version

    def score(self, features: Sequence[Mapping[str, float]]) -> tuple[list[float], list[Reasons]]:
        if not features:
            return [], []
        cols, whys = [], []
        for scorer, kind in self.components:
            raw, why = scorer.score(features)
            cols.append(transform(np.asarray(raw, float), kind))
            whys.append(why)
        e = np.log1p(np.maximum([f["bg_expected_purchases"] for f in features], 0.0))
        g = np.column_stack([*cols, e])
        risk = score(g, self.w)
        if self.w is None:
            return risk.tolist(), [whys[0][i] for i in range(len(features))]
        part = g[:, :len(cols)] * self.w[:len(cols)]
        best = np.argmax(part, axis=1)
        return risk.tolist(), [whys[int(c)][i] for i, c in enumerate(best)]
