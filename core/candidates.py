"""Candidate scorers that learn side by side from the delayed-label stream (pure, no I/O).

Every candidate turns one training example's inputs (the 17 features, the long-range
inputs and the BG/NBD inputs, by name) into a raw score, higher = riskier, and learns
from the label afterwards (prequential: test, then train). :mod:`core.champion` keeps
their metrics over one window and lets the best speak; :meth:`Candidate.scorer` gives
the vectorised scorer a worker serves with.

- ``model:<pipeline>``: the configured River pipeline on the features and long-range
  inputs (and the BG/NBD inputs with ``CHURN_MODEL_VALUE_INPUTS``); learns online;
  reasons = weight x standardized input.
- ``stacked:logreg``: River ``StandardScaler | LogisticRegression`` on all of them, the
  BG/NBD quantities included; online; weight x standardized input.
- ``bgnbd``: P(no purchase in the next H days) under the current BG/NBD fit (the value
  job fits it; the candidate learns nothing); deviation reasons.
- ``recency``: days since the last event; reason ``days_since_last_event``.
- ``rule:recency-frequency``: :func:`core.rules.recency_frequency_risk`; its two terms.
- ``batch:hgb``: scikit-learn HistGradientBoosting retrained on the released examples
  every few event-time days (:mod:`core.batch`); deviation reasons.

*Deviation* reasons (models without coefficients): the inputs whose standardized
deviation from the mean of the examples learned so far points towards churn, largest
first; the direction of an input is fixed (BG/NBD: later than the usual gap and fewer
purchase days are riskier) or, for the batch model, the sign of its correlation with
the label in the training set.

>>> c = FixedCandidate("recency")
>>> f = {"days_since_last_event": 12.0}
>>> c.predict(f)
12.0
>>> c.learn(f, True); c.learn({"days_since_last_event": 2.0}, False)
>>> [(REASON_NAMES[i], round(v, 3)) for i, v in c.reasons(f)]
[('days_since_last_event', 1.0)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from core.feature_matrix import FeatureRows
from core.model import REASON_NAMES, make_pipeline, model_inputs
from core.rules import RULE_NAME, recency_frequency_risk
from core.scoring import Reasons, Scorer, make_scorer, score_rows

if TYPE_CHECKING:
    from core.fast_linear import SharedScaler

_INDEX = {n: i for i, n in enumerate(REASON_NAMES)}
_ALL_X = model_inputs(dict.fromkeys(REASON_NAMES, 1.0))
_BASE_X = model_inputs(dict.fromkeys(REASON_NAMES[:17], 1.0))
_VALUE_X = tuple(k for k in _ALL_X if k.startswith("bg_"))
_LONG_X = tuple(k for k in _ALL_X if k not in _BASE_X and k not in _VALUE_X)
# the inputs behind a fixed candidate's score, and their direction (+1: higher = riskier)
DIRECTIONS: dict[str, dict[str, float]] = {
    "bgnbd": {"purchase_recency_vs_gap": 1.0, "days_since_last_purchase": 1.0,
              "purchase_days_total": -1.0, "bg_p_alive": -1.0},
    "recency": {"days_since_last_event": 1.0},
}


class Moments:
    """Running mean and variance per input (Welford), for deviation reasons."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self.n = 0
        self.mean = [0.0] * len(self.names)  # plain floats: a few per example, no numpy
        self.m2 = [0.0] * len(self.names)

    def update(self, f: Mapping[str, float]) -> None:
        self.n += 1
        n, mean, m2 = self.n, self.mean, self.m2
        for i, name in enumerate(self.names):
            x = f[name]
            delta = x - mean[i]
            mean[i] += delta / n
            m2[i] += delta * (x - mean[i])

    def z(self, rows: np.ndarray) -> np.ndarray:
        mean = np.array(self.mean)
        std = np.sqrt(np.array(self.m2) / max(1, self.n))
        return np.where(std > 0, (rows - mean) / np.where(std > 0, std, 1.0), 0.0)


def deviation_reasons(rows: np.ndarray, moments: Moments, sign: np.ndarray,
                      k: int = 3) -> list[Reasons]:
    """Per row: the inputs whose ``sign`` x standardized deviation is largest (> 0)."""
    contrib = moments.z(rows) * sign
    idx = [_INDEX[n] for n in moments.names]
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
    return [tuple((idx[j], float(row[j])) for j in o if row[j] > 0)
            for row, o in zip(contrib, order, strict=True)]


class Candidate:
    name: str
    value_inputs = False  # whether its inputs include the BG/NBD inputs

    def predict(self, f: Mapping[str, float]) -> float:
        raise NotImplementedError

    def learn(self, f: Mapping[str, float], y: bool) -> None:
        raise NotImplementedError

    def scorer(self, version: int) -> Scorer:
        raise NotImplementedError


class OnlineCandidate(Candidate):
    """A River pipeline; ``value_inputs`` False: the BG/NBD inputs are left out."""

    def __init__(self, name: str, pipeline_name: str, params: dict[str, Any],
                 value_inputs: bool, long_inputs: bool = True) -> None:
        self.name, self.value_inputs, self.long_inputs = name, value_inputs, long_inputs
        self.pipeline = make_pipeline(pipeline_name, **params)
        self.learned = 0
        self.pair: SharedScaler | None = None  # set when it shares its scaler
        # the model inputs it leaves out of the inputs of every source (model_inputs once
        # per example for all candidates: the learner's own cost is mostly River's)
        self.drop = frozenset((() if value_inputs else _VALUE_X) + (() if long_inputs
                                                                    else _LONG_X))

    def inputs(self, x: Mapping[str, float]) -> dict[str, float]:
        """This candidate's inputs from ``model_inputs`` of every source."""
        drop = self.drop
        return {k: v for k, v in x.items() if k not in drop} if drop else dict(x)

    def predict(self, f: Mapping[str, float]) -> float:
        return self.predict_x(self.inputs(model_inputs(f)))

    def learn(self, f: Mapping[str, float], y: bool) -> None:
        self.learn_x(self.inputs(model_inputs(f)), y)

    def predict_x(self, x: dict[str, float]) -> float:
        self._sync()
        return float(self.pipeline.predict_proba_one(x).get(True, 0.5))

    def learn_x(self, x: dict[str, float], y: bool) -> None:
        self._sync()
        self.pipeline.learn_one(x, y)
        pair = getattr(self, "pair", None)  # absent in checkpoints from before it
        if pair is not None:
            pair.load()
        self.learned += 1

    def _sync(self) -> None:
        """A candidate sharing its scaler (SharedScaler) may hold its state in arrays."""
        pair = getattr(self, "pair", None)
        if pair is not None:
            pair.sync()

    def scorer(self, version: int) -> Scorer:
        self._sync()
        return make_scorer(self.pipeline, self.name.split(":", 1)[1], version, self.learned, 0,
                           30, value_inputs=self.value_inputs, name=self.name)


class FixedCandidate(Candidate):
    """A score that does not learn: ``bgnbd``, ``recency`` or the cold-start rule."""

    def __init__(self, kind: str, horizon_days: int = 30) -> None:
        self.kind, self.horizon = kind, horizon_days
        self.name = RULE_NAME if kind == "rule" else kind
        self.value_inputs = kind == "bgnbd"
        names = DIRECTIONS.get(kind, {})
        self.moments = Moments(tuple(names))
        self.sign = np.array(list(names.values()))

    def predict(self, f: Mapping[str, float]) -> float:
        if self.kind == "bgnbd":
            return float(f["bg_p_no_purchase"])
        if self.kind == "recency":
            return float(f["days_since_last_event"])
        return recency_frequency_risk(f, self.horizon)

    def learn(self, f: Mapping[str, float], y: bool) -> None:
        if self.moments.names:
            self.moments.update(f)

    def reasons(self, f: Mapping[str, float], k: int = 3) -> Reasons:
        row = np.array([[f[n] for n in self.moments.names]])
        return deviation_reasons(row, self.moments, self.sign, k)[0]

    def scorer(self, version: int) -> Scorer:
        if self.kind == "rule":
            from core.scoring import RuleScorer

            return RuleScorer(self.horizon)
        return _FixedScorer(self, version)


class _FixedScorer:
    def __init__(self, cand: FixedCandidate, version: int) -> None:
        self.cand, self.name, self.version = cand, cand.name, version
        self.value_inputs = cand.value_inputs

    def score(self, features: Sequence[Mapping[str, float]]) -> tuple[list[float], list[Reasons]]:
        if not features:
            return [], []
        c = self.cand
        rows = np.array([[f[n] for n in c.moments.names] for f in features])
        return ([c.predict(f) for f in features],
                deviation_reasons(rows, c.moments, c.sign))


def platt(raw: np.ndarray, y: np.ndarray, transform: str, iters: int = 50
          ) -> tuple[float, float] | None:
    """(a, b) of P(churn) = sigmoid(a g(raw) + b) by Newton's method on the log-loss, with
    g = logit (probabilities) or log1p (days). Strictly increasing (a > 0), so it
    leaves the ranking (tiers, Top-K) as it is. None when no increasing fit exists
    (one class, a score that does not rank, no convergence): the raw score then
    serves, never a constant that would tie every user.

    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.01, 0.99, 20_000)
    >>> y = (rng.random(20_000) < p ** 2).astype(float)   # overconfident scores
    >>> a, b = platt(p, y, "logit")
    >>> round(a, 1) > 1.0
    True
    """
    g = _g(np.asarray(raw, float), transform)
    y = np.asarray(y, float)
    if len(y) == 0 or y.min() == y.max() or g.min() == g.max():
        return None
    a, b = 1.0, 0.0
    if transform == "log1p":  # start near the data: a day-count is not a logit
        a, b = 1.0, _logit(float(np.clip(y.mean(), 1e-6, 1 - 1e-6))) - float(g.mean())
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(a * g + b, -35, 35)))
        w = p * (1 - p) + 1e-12
        grad = np.array([np.dot(p - y, g), np.sum(p - y)])
        h = np.array([[np.dot(w, g * g), np.dot(w, g)], [np.dot(w, g), w.sum()]])
        step = np.linalg.solve(h + 1e-9 * np.eye(2), grad)
        step = np.clip(step, -5.0, 5.0)  # damped: far-out logits must not throw it off
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    else:
        return None
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0:
        return None
    return float(a), float(b)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _g(raw: np.ndarray, transform: str) -> np.ndarray:
    if transform == "log1p":
        return np.log1p(np.maximum(raw, 0.0))
    q = np.clip(raw, 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def calibrate(raw: Sequence[float] | np.ndarray, ab: tuple[float, float] | None,
              transform: str, horizon_days: int = 30) -> np.ndarray:
    """Served risk from raw scores; without a fit (``ab`` None: too few labels yet) the
    raw probability itself, or min(1, days / H) for a score in days."""
    r = np.asarray(raw, float)
    if ab is None:
        return np.minimum(1.0, r / horizon_days) if transform == "log1p" else r
    a, b = ab
    return 1 / (1 + np.exp(-np.clip(a * _g(r, transform) + b, -35, 35)))


class Calibrated:
    """A champion as served: its raw scores through the calibration, its reasons."""

    def __init__(self, inner: Scorer, ab: tuple[float, float] | None, transform: str,
                 horizon_days: int) -> None:
        self.inner, self.ab, self.transform, self.horizon = inner, ab, transform, horizon_days
        self.name, self.version = inner.name, inner.version
        self.value_inputs = inner.value_inputs

    def score(self, features: Any) -> tuple[list[float], list[Reasons]]:
        return self._calibrated(*self.inner.score(features))

    def score_rows(self, rows: FeatureRows) -> tuple[list[float], list[Reasons]]:
        return self._calibrated(*score_rows(self.inner, rows))

    def _calibrated(self, raw: list[float], why: list[Reasons]) -> tuple[list[float], Any]:
        return (calibrate(raw, self.ab, self.transform, self.horizon).tolist() if raw
                else raw), why
