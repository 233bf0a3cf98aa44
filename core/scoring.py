"""Scorers: many users at once, each with a risk and its top reasons (pure, no I/O).

Who speaks: the transparent rule until the model has learned from ``min_labels``
examples, then the model. ``StandardScaler | LogisticRegression`` pipelines are
scored as one matrix product (the same arithmetic as River's ``predict_proba_one``
up to float summation order); any other River classifier is scored one user at a
time, with the documented fallback reasons of :func:`core.model.reasons`.

Reasons are ``(feature index in FEATURE_NAMES, contribution)``, largest first,
positive contributions only.

>>> rule = RuleScorer(horizon_days=30)
>>> f = {n: 0.0 for n in FEATURE_NAMES}
>>> f.update(days_since_last_event=15.0, active_days_30d=1.0)
>>> risks, why = rule.score([f])
>>> risks, [(FEATURE_NAMES[i], round(c, 2)) for i, c in why[0]]
([0.7], [('active_days_30d', 0.4), ('days_since_last_event', 0.3)])
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from core.feature_matrix import FeatureRows
from core.features import FEATURE_NAMES
from core.long_range import LONG_RANGE_NAMES
from core.model import (
    REASON_NAMES,
    VALUE_INPUT_NAMES,
    _source,
    model_inputs,
    reasons,
)
from core.rules import RULE_NAME, recency_frequency_risk

Reasons = tuple[tuple[int, float], ...]
_INDEX = {name: i for i, name in enumerate(REASON_NAMES)}


def source_names(long: bool = True, value: bool = False) -> tuple[str, ...]:
    """The features a model's inputs are computed from: the 17, the long-range inputs
    (``long``), the BG/NBD inputs (``value``)."""
    return (*FEATURE_NAMES, *(LONG_RANGE_NAMES if long else ()),
            *(VALUE_INPUT_NAMES if value else ()))


def input_names(long: bool = True, value: bool = False) -> tuple[str, ...]:
    return tuple(model_inputs(dict.fromkeys(source_names(long, value), 1.0)))


INPUT_NAMES = input_names(long=False)  # the inputs from the 17 features alone
LONG_INPUTS = input_names()
# with the optional BG/NBD inputs (CHURN_MODEL_VALUE_INPUTS): three more columns
VALUE_INPUTS = input_names(long=False, value=True)


class Scorer(Protocol):
    name: str
    version: int
    value_inputs: bool  # whether features must carry VALUE_INPUT_NAMES

    def score(self, features: Sequence[Mapping[str, float]]) -> tuple[list[float], list[Reasons]]:
        """Risks and reasons, one per user, in order."""


def _top(contrib: Mapping[int, float], k: int) -> Reasons:
    return tuple(sorted(((i, c) for i, c in contrib.items() if c > 0),
                        key=lambda ic: (-ic[1], ic[0]))[:k])


class RuleScorer:
    """:func:`core.rules.recency_frequency_risk`; its two terms are the reasons."""

    name = RULE_NAME
    version = 0
    value_inputs = False

    def __init__(self, horizon_days: int = 30, k: int = 3) -> None:
        self.horizon = horizon_days
        self.k = k

    def score(self, features: Sequence[Mapping[str, float]]) -> tuple[list[float], list[Reasons]]:
        risks, why = [], []
        h = self.horizon
        for f in features:
            risks.append(recency_frequency_risk(f, h))
            recency = min(1.0, f["days_since_last_event"] / h)
            rarity = 1.0 - (max(1.0, min(30.0, f["active_days_30d"])) - 1.0) / 29.0
            why.append(_top({_INDEX["days_since_last_event"]: 0.6 * recency,
                             _INDEX["active_days_30d"]: 0.4 * rarity}, self.k))
        return risks, why


class _Layout:
    """How :func:`inputs_matrix` builds each input column from the source columns."""

    def __init__(self, long: bool, value: bool) -> None:
        src = {n: i for i, n in enumerate(source_names(long, value))}
        self.sources = tuple(src)
        self.row = operator.itemgetter(*self.sources)  # a feature dict's source values
        self.log_in, self.log_out, self.raw_in, self.raw_out = [], [], [], []
        for j, name in enumerate(input_names(long, value)):
            if name == "recency_vs_gap":
                self.gap_out = j
            elif name.startswith("log_"):
                self.log_in.append(src[name.removeprefix("log_")])
                self.log_out.append(j)
            elif name == "bg_log_expected_purchases":
                self.log_in.append(src["bg_expected_purchases"])
                self.log_out.append(j)
            else:
                self.raw_in.append(src[name])
                self.raw_out.append(j)
        self.width = len(input_names(long, value))
        self.active, self.recency = src["active_days_30d"], src["days_since_last_event"]


_LAYOUTS = {(lo, va): _Layout(lo, va) for lo in (False, True) for va in (False, True)}


def inputs_matrix(features: Sequence[Mapping[str, float]], value: bool = False,
                  long: bool = True) -> np.ndarray:
    """:func:`core.model.model_inputs` for many users at once, columns in
    ``input_names(long, value)`` order (the features carry those sources).

    >>> f = {n: 2.0 for n in REASON_NAMES}
    >>> bool(np.allclose(inputs_matrix([f], value=True)[0], list(model_inputs(f).values()),
    ...                  rtol=1e-15))
    True
    """
    lay = _LAYOUTS[(long, value)]
    row = lay.row
    m = np.array([row(f) for f in features], dtype=float)
    return _inputs(m.reshape(len(features), len(lay.sources)), lay)


def rows_inputs(rows: FeatureRows, value: bool = False, long: bool = True) -> np.ndarray:
    """:func:`inputs_matrix` from a feature matrix (``rows.names`` hold the sources)."""
    lay = _LAYOUTS[(long, value)]
    if rows.names[:len(lay.sources)] == lay.sources:
        m = rows.matrix[:, :len(lay.sources)]
    else:
        where = {n: i for i, n in enumerate(rows.names)}
        m = rows.matrix[:, [where[n] for n in lay.sources]]
    return _inputs(m, lay)


def _inputs(m: np.ndarray, lay: _Layout) -> np.ndarray:
    out = np.empty((len(m), lay.width))
    out[:, lay.log_out] = np.log1p(np.maximum(m[:, lay.log_in], 0.0))
    out[:, lay.raw_out] = m[:, lay.raw_in]
    gap = 30.0 / np.maximum(1.0, m[:, lay.active])
    out[:, lay.gap_out] = np.log1p(m[:, lay.recency] / gap)
    return out


def top_reasons(per_feature: np.ndarray, k: int) -> list[Reasons]:
    """Each row's ``k`` largest positive contributions, largest first (ties: the lower
    feature index first), as (feature index, contribution) pairs.

    >>> top_reasons(np.array([[0.5, -1.0, 0.5, 2.0], [-1.0, -2.0, 0.0, -0.5]]), 3)
    [((3, 2.0), (0, 0.5), (2, 0.5)), ()]
    """
    order = np.argsort(-per_feature, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(per_feature, order, axis=1)
    # (Python lists: a loop over numpy rows and scalars cost ~8 us per user)
    every: list[bool] = (top > 0).all(axis=1).tolist()  # type: ignore[assignment]
    return [tuple(zip(ir, vr, strict=True)) if ok
            else tuple((i, v) for i, v in zip(ir, vr, strict=True) if v > 0)
            for ir, vr, ok in zip(order.tolist(), top.tolist(), every, strict=True)]


def _linear_parts(pipeline: Any) -> tuple[Any, Any] | None:
    steps = list(getattr(pipeline, "steps", {}).values())
    if len(steps) != 2 or type(steps[0]).__name__ != "StandardScaler":
        return None
    if type(steps[1]).__name__ != "LogisticRegression" or not steps[0].with_std:
        return None
    return steps[0], steps[1]


class LinearScorer:
    """``StandardScaler | LogisticRegression`` as arrays: risk = sigmoid(z . w + b) with
    z = (x - mean) / std (0 where the variance is 0), contributions w * z per input,
    summed per source feature."""

    def __init__(self, pipeline: Any, name: str, version: int, k: int = 3,
                 value_inputs: bool = False) -> None:
        parts = _linear_parts(pipeline)
        if parts is None:
            raise ValueError("not a StandardScaler | LogisticRegression pipeline")
        scaler, model = parts
        self.name, self.version, self.k = name, version, k
        self.value_inputs = value_inputs
        # a model that learned from the long-range inputs needs them in the features
        self.long = "log_purchase_days_total" in scaler.means
        names = input_names(self.long, value_inputs)
        self.mean = np.array([scaler.means.get(n, 0.0) for n in names])
        var = np.array([scaler.vars.get(n, 0.0) for n in names])
        self.inv_std = np.where(var > 0, 1.0 / np.sqrt(np.where(var > 0, var, 1.0)), 0.0)
        self.w = np.array([model.weights.get(n, 0.0) for n in names])
        self.b = float(model.intercept)
        self.to_feature = np.zeros((len(names), len(REASON_NAMES)))
        for i, n in enumerate(names):
            self.to_feature[i, _INDEX[_source(n)]] = 1.0

    def score(self, features: Sequence[Mapping[str, float]]) -> tuple[list[float], list[Reasons]]:
        if not features:
            return [], []
        return self._score(inputs_matrix(features, self.value_inputs, self.long))

    def score_rows(self, rows: FeatureRows) -> tuple[list[float], list[Reasons]]:
        if not len(rows):
            return [], []
        return self._score(rows_inputs(rows, self.value_inputs, self.long))

    def _score(self, x: np.ndarray) -> tuple[list[float], list[Reasons]]:
        z = (x - self.mean) * self.inv_std
        wz = z * self.w
        logit = wz.sum(axis=1) + self.b
        p = 1.0 / (1.0 + np.exp(-np.clip(logit, -30.0, 30.0)))
        p = np.where(logit < -30, 0.0, np.where(logit > 30, 1.0, p))
        return p.tolist(), top_reasons(wz @ self.to_feature, self.k)


class PipelineScorer:
    """Any River classifier pipeline, one user at a time (reasons: core.model fallback)."""

    def __init__(self, pipeline: Any, name: str, version: int, k: int = 3,
                 value_inputs: bool = False) -> None:
        self.pipeline, self.name, self.version, self.k = pipeline, name, version, k
        self.value_inputs = value_inputs

    def score(self, features: Sequence[Mapping[str, float]]) -> tuple[list[float], list[Reasons]]:
        risks, why = [], []
        for f in features:
            risks.append(float(self.pipeline.predict_proba_one(model_inputs(f)).get(True, 0.0)))
            why.append(tuple((_INDEX[r.feature], r.contribution)
                             for r in reasons(self.pipeline, f, {}, self.k)))
        return risks, why


def score_rows(scorer: Scorer, rows: FeatureRows) -> tuple[list[float], list[Reasons]]:
    """``scorer.score`` of the users of ``rows``: from the matrix where the scorer can
    (:class:`LinearScorer`, and what wraps one), else from one dict per user."""
    fast = getattr(scorer, "score_rows", None)
    if fast is not None:
        return fast(rows)
    return scorer.score(rows.dicts())


def model_speaks(examples: int, min_labels: int, model_rocauc: float | None,
                 rule_rocauc: float | None, compare: bool = True) -> bool:
    """The cold-start handoff: the model speaks once it has learned ``min_labels``
    examples and ranks the recent ones (the prequential window) at least as well as the
    rule does on the same examples. A missing or undefined (NaN) AUC does not hold it
    back: one class so far, or a checkpoint from before the rule was tracked.
    ``compare=False`` (``CHURN_MODEL_HANDOFF=count``): the count alone.

    >>> model_speaks(5000, 1000, 0.80, 0.84), model_speaks(5000, 1000, 0.86, 0.84)
    (False, True)
    >>> model_speaks(500, 1000, 0.9, 0.5), model_speaks(5000, 1000, 0.9, None)
    (False, True)
    """
    if examples < min_labels:
        return False
    if not compare or model_rocauc is None or rule_rocauc is None:
        return True
    return not model_rocauc < rule_rocauc


def make_scorer(pipeline: Any | None, pipeline_name: str, version: int, examples: int,
                min_labels: int, horizon_days: int, ready: bool = True,
                value_inputs: bool = False, name: str | None = None) -> Scorer:
    """The scorer that speaks: the rule until the model has ``min_labels`` examples and
    is ``ready`` (the learner's judgement: it ranks recent examples at least as well as
    the rule, see ``stream.learner.state.LearnerState.ready``). ``value_inputs``: the model
    learned from the BG/NBD inputs too, so they must be in the features it scores."""
    if pipeline is None or examples < min_labels or not ready:
        return RuleScorer(horizon_days)
    name = name or f"model:{pipeline_name}"
    if _linear_parts(pipeline) is not None:
        return LinearScorer(pipeline, name, version, value_inputs=value_inputs)
    return PipelineScorer(pipeline, name, version, value_inputs=value_inputs)
