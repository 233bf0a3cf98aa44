"""The online churn model: inputs, pipelines, and per-user reasons (docs/design.md section 5).

Counts, spend and day-lengths are heavy-tailed, so the linear model sees
``log1p`` of them, the ratios as they are, and recency relative to the user's
own typical gap. Pipelines come from a small registry (or a dotted
``module:factory`` name); the default is ``StandardScaler | LogisticRegression``
with a small SGD step, which a delayed, drifting label stream needs.

>>> x = model_inputs({**{n: 0.0 for n in FEATURE_NAMES}, "active_days_30d": 3.0,
...                   "days_since_last_event": 20.0})
>>> round(x["log_days_since_last_event"], 4), round(x["recency_vs_gap"], 4)
(3.0445, 1.0986)
>>> m = make_pipeline("logreg")
>>> for _ in range(200):
...     m.learn_one(model_inputs(_silent(30.0)), True)
...     m.learn_one(model_inputs(_silent(0.5)), False)
>>> m.predict_proba_one(model_inputs(_silent(30.0)))[True] > 0.6
True
>>> [r.feature for r in reasons(m, _silent(30.0), {n: 1.0 for n in FEATURE_NAMES}, k=1)]
['days_since_last_event']
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from core.features import FEATURE_NAMES
from core.long_range import LONG_RANGE_NAMES

LOG_FEATURES = ("n_events_7d", "n_events_15d", "n_events_30d", "active_days_30d",
                "n_purchase_30d", "total_spend_30d", "days_since_last_event",
                "days_since_last_purchase", "tenure_days", "price_volatility",
                "brand_switch_count_30d")
RATIO_FEATURES = ("purchase_ratio", "activity_ratio_15d", "activity_trend", "visit_regularity",
                  "brand_concentration_ratio", "cart_abandon_ratio")
# optional BG/NBD inputs (CHURN_MODEL_VALUE_INPUTS; computed by core.value.bgnbd_inputs):
# customer or not, P(alive), E[purchase days in the next H days], P(no purchase day in H)
VALUE_INPUT_NAMES = ("bg_customer", "bg_p_alive", "bg_expected_purchases", "bg_p_no_purchase")
# the long-range inputs (core.long_range) the model sees as they are; the rest as log1p
LONG_RATIO_NAMES = ("purchase_gap_cv",)
# what a reason may name: a stored reason is an index into this tuple (new names are
# appended, so stored indices keep their meaning)
REASON_NAMES = (*FEATURE_NAMES, *VALUE_INPUT_NAMES, *LONG_RANGE_NAMES)


_LOG_KEYS = tuple((name, f"log_{name}") for name in LOG_FEATURES)
_LONG_KEYS = tuple((name, name if name in LONG_RATIO_NAMES else f"log_{name}")
                   for name in LONG_RANGE_NAMES)


def model_inputs(f: Mapping[str, float]) -> dict[str, float]:
    """Model inputs from the 17 features: log1p of heavy-tailed ones, ratios as they are,
    and ``recency_vs_gap`` = log1p(days since the last event / the user's typical gap);
    then the long-range inputs when ``f`` has them (log1p, ``purchase_gap_cv`` as it is),
    then the BG/NBD inputs when ``f`` has them."""
    log1p = math.log1p  # once per training example and per scored user: no formatting
    x = {key: log1p(v) if (v := f[name]) > 0.0 else 0.0 for name, key in _LOG_KEYS}
    for name in RATIO_FEATURES:
        x[name] = f[name]
    typical_gap = 30.0 / max(1.0, f["active_days_30d"])
    x["recency_vs_gap"] = log1p(f["days_since_last_event"] / typical_gap)
    if "purchase_days_total" in f:  # the long-range inputs (LONG_RANGE_NAMES)
        for name, key in _LONG_KEYS:
            v = f[name]
            x[key] = v if key is name else (log1p(v) if v > 0.0 else 0.0)
    if "bg_p_alive" in f:  # optional BG/NBD inputs (VALUE_INPUT_NAMES)
        x["bg_customer"] = f["bg_customer"]
        x["bg_p_alive"] = f["bg_p_alive"]
        x["bg_log_expected_purchases"] = math.log1p(max(0.0, f["bg_expected_purchases"]))
        x["bg_p_no_purchase"] = f["bg_p_no_purchase"]
    return x


def _source(input_name: str) -> str:
    """The feature an input is computed from (for reasons in the user's own terms)."""
    if input_name == "recency_vs_gap":
        return "days_since_last_event"
    if input_name == "bg_log_expected_purchases":
        return "bg_expected_purchases"
    return input_name.removeprefix("log_")


def _logreg(lr: float = 0.005, l2: float = 0.0) -> Any:
    from river import linear_model, optim, preprocessing

    return preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(lr), intercept_lr=lr, l2=l2)


def _arf(n_models: int = 10, seed: int = 1) -> Any:
    from river import forest, preprocessing

    return preprocessing.StandardScaler() | forest.ARFClassifier(n_models=n_models, seed=seed)


REGISTRY: dict[str, Callable[..., Any]] = {"logreg": _logreg, "arf": _arf}


def make_pipeline(name: str = "logreg", **params: Any) -> Any:
    """A fresh River pipeline from the registry, or from ``package.module:factory``."""
    if name in REGISTRY:
        return REGISTRY[name](**params)
    module, sep, attr = name.partition(":")
    if not sep:
        raise ValueError(f"unknown pipeline {name!r}: one of {sorted(REGISTRY)} or module:factory")
    return getattr(importlib.import_module(module), attr)(**params)


def contributions(pipeline: Any, x: Mapping[str, float]) -> dict[str, float] | None:
    """weight x standardized input for ``StandardScaler | <linear model>``; None otherwise."""
    steps = list(getattr(pipeline, "steps", {}).values())
    if len(steps) != 2 or not hasattr(steps[1], "weights"):
        return None
    scaled = steps[0].transform_one(dict(x))
    weights = steps[1].weights
    return {name: weights.get(name, 0.0) * value for name, value in scaled.items()}


class Reason(NamedTuple):
    feature: str
    value: float
    population_mean: float
    contribution: float
    text: str


_TEMPLATES = {
    "days_since_last_event": "no activity for {v:.1f} days; typical: {m:.1f}",
    "days_since_last_purchase": "no purchase for {v:.0f} days; typical: {m:.0f}",
    "active_days_30d": "active on {v:.0f} of the last 30 days; typical: {m:.0f}",
    "n_events_7d": "{v:.0f} events in the last 7 days; typical: {m:.0f}",
    "n_events_15d": "{v:.0f} events in the last 15 days; typical: {m:.0f}",
    "n_events_30d": "{v:.0f} events in the last 30 days; typical: {m:.0f}",
    "n_purchase_30d": "{v:.0f} purchases in the last 30 days; typical: {m:.1f}",
    "total_spend_30d": "spent {v:.2f} in the last 30 days; typical: {m:.2f}",
    "activity_trend": "activity trend {v:+.2f} (negative = slowing down); typical: {m:+.2f}",
    "cart_abandon_ratio": "abandons {v:.0%} of carts; typical: {m:.0%}",
    "bg_p_alive": "still an active buyer with probability {v:.0%} (BG/NBD); typical: {m:.0%}",
    "bg_expected_purchases": "{v:.2f} purchase days expected within the churn horizon "
                             "(BG/NBD); typical: {m:.2f}",
    "bg_p_no_purchase": "no purchase expected within the churn horizon with probability "
                        "{v:.0%} (BG/NBD); typical: {m:.0%}",
    "purchase_days_total": "bought on {v:.0f} days ever; typical: {m:.1f}",
    "purchase_days_90d": "bought on {v:.0f} days in the last 90 days; typical: {m:.1f}",
    "purchase_days_180d": "bought on {v:.0f} days in the last 180 days; typical: {m:.1f}",
    "purchase_days_365d": "bought on {v:.0f} days in the last 365 days; typical: {m:.1f}",
    "days_since_first_purchase": "first purchase {v:.0f} days ago; typical: {m:.0f}",
    "purchase_gap_mean_days": "buys every {v:.0f} days on average; typical: {m:.0f}",
    "purchase_gap_cv": "irregular buying (gap variation {v:.2f}); typical: {m:.2f}",
    "purchase_recency_vs_gap": "{v:.1f} usual purchase gaps since the last purchase; "
                               "typical: {m:.1f}",
    "spend_per_purchase_day": "spends {v:.2f} per purchase day; typical: {m:.2f}",
}


def sentence(feature: str, value: float, mean: float) -> str:
    """
    >>> sentence("bg_customer", 0.0, 0.62)
    'has never purchased; typical: 62% of users have'
    """
    if feature == "bg_customer":
        template = ("has purchased before" if value else "has never purchased") + \
            "; typical: {m:.0%} of users have"
    else:
        template = _TEMPLATES.get(feature,
                                  feature.replace("_", " ") + " {v:.3g}; typical: {m:.3g}")
    if math.isnan(mean):  # no population yet (before the first anchor)
        template = template.split("; typical")[0]
    return template.format(v=value, m=mean)


def reason_rows(reasons: Sequence[tuple[int, float]], features: dict[str, float],
                means: dict[str, float]) -> list[dict[str, object]]:
    """Reasons as data and as one sentence each (population mean: latest anchor).
    ``features`` holds the BG/NBD inputs too when a reason names one of them."""
    out = []
    for idx, contribution in reasons:
        name = REASON_NAMES[idx]
        mean = means.get(name, math.nan)
        value = features[name]
        out.append({"feature": name, "value": value,
                    "population_mean": None if math.isnan(mean) else mean,
                    "contribution": contribution, "text": sentence(name, value, mean)})
    return out


def reasons(pipeline: Any, features: Mapping[str, float], population_mean: Mapping[str, float],
            k: int = 3) -> list[Reason]:
    """The ``k`` features that push this user's risk up the most, largest first.

    Linear models: contribution = weight x standardized input, summed per source
    feature. Models without coefficients fall back to the standardized deviation
    from the population mean (documented in the README).
    """
    x = model_inputs(features)
    contrib = contributions(pipeline, x)
    per_feature: dict[str, float] = {}
    if contrib is None:
        scaler = list(getattr(pipeline, "steps", {}).values())[:1]
        scaled = scaler[0].transform_one(dict(x)) if scaler else x
        contrib = {name: abs(v) for name, v in scaled.items()}
    for name, c in contrib.items():
        src = _source(name)
        per_feature[src] = per_feature.get(src, 0.0) + c
    ranked = sorted((c, f) for f, c in per_feature.items() if c > 0)[::-1][:k]
    return [Reason(f, features[f], population_mean.get(f, math.nan), c,
                   sentence(f, features[f], population_mean.get(f, math.nan)))
            for c, f in ranked]


def _silent(days: float) -> dict[str, float]:
    """A user silent for ``days`` who was active on 5 of the last 30 days (doctest helper)."""
    f = {n: 0.0 for n in FEATURE_NAMES}
    f.update(days_since_last_event=days, active_days_30d=5.0, n_events_30d=10.0, tenure_days=60.0,
             days_since_last_purchase=365.0)
    return f
