"""The learner's state: every candidate, its prequential metrics, the offset learned
(what a checkpoint pickles; the process around it is :mod:`stream.learner.app`).

For each released example it first predicts (the prequential score), then learns.

Message format (JSON, written by :mod:`stream.anchors`): ``{"user_id",
"partition", "t": anchor ms, "i": index in that anchor's release, "n": its size,
"features": {17 features}, "long": {long-range inputs}, "value": {BG/NBD inputs} (each
absent from workers before them),
"label": 0|1, "release": ms}``. Releases of one partition
come in anchor order and are repeated whole after a worker crash, so an example
whose ``(t, i)`` is not after the last one learned from its partition is a repeat:
it is counted and skipped.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from core.champion import Champion
from core.features import FEATURE_NAMES
from core.long_range import LONG_RANGE_NAMES
from core.model import VALUE_INPUT_NAMES, model_inputs
from core.prequential import Prequential
from core.quality_history import QualityHistory
from core.rules import RULE_NAME, recency_frequency_risk
from core.scoring import Scorer, make_scorer, model_speaks
from core.settings import Settings


@dataclass
class LearnerState:
    """Everything a checkpoint holds (pickled as one object)."""

    pipeline: Any
    metrics: Prequential
    examples: int = 0
    labels: Counter[int] = field(default_factory=Counter)
    invalid: int = 0
    offset: int = -1
    repeats: int = 0
    positions: dict[int, tuple[int, int]] = field(default_factory=dict)  # partition -> (t, i)
    # the cold-start rule judged on the same examples, so the model speaks only once it
    # ranks them at least as well (``ready``)
    rule_metrics: Prequential = field(default_factory=Prequential)
    horizon_days: int = 30
    # CHURN_MODEL_VALUE_INPUTS: learn from the snapshots' BG/NBD inputs too; workers
    # read this from the checkpoint to score with the inputs the model knows
    value_inputs: bool = False
    # the long-range inputs (core.long_range); off: the model sees the 17 features only
    long_inputs: bool = True
    # the candidates and who speaks (core.champion); ``pipeline`` is its model candidate's.
    # None in checkpoints from before it: the old handoff (``ready``) decides
    champion: Champion | None = None
    # the speaking scorer's window at the end of each anchor day (core.quality_history);
    # None in checkpoints from before it
    history: QualityHistory | None = field(default_factory=QualityHistory)

    def __getstate__(self) -> dict[str, Any]:
        """A checkpoint: the model's River objects first brought up to date (the
        champion's linear pair learns on arrays, core.fast_linear)."""
        champion = getattr(self, "champion", None)
        if champion is not None:
            champion.sync()
        return self.__dict__.copy()

    def learn(self, raw: bytes, offset: int) -> float | None:
        """Predict, then learn one example (a ``training.examples`` message); returns the
        prequential prediction, or None for an invalid or repeated example."""
        self.offset = offset
        try:
            body = orjson.loads(raw)
            features = {name: float(body["features"][name]) for name in FEATURE_NAMES}
            long = body.get("long")  # absent from workers before the long-range inputs: 0
            features.update((name, float(long[name]) if long is not None else 0.0)
                            for name in LONG_RANGE_NAMES)
            if self.value_inputs or getattr(self, "champion", None) is not None:
                features.update(_value_inputs(body.get("value"), features))
            label = body["label"]
            where = (int(body.get("partition", -1)), int(body.get("t", -1)),
                     int(body.get("i", -1)))
            release = int(body.get("release", -1))
            user = str(body.get("user_id", ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            self.invalid += 1
            return None
        return self.learn_example(features, label, where, release, user)

    def learn_example(self, features: dict[str, float], label: object,
                      where: tuple[int, int, int] = (-1, -1, -1), release_ms: int = -1,
                      user: str = "") -> float | None:
        """The same, for an example already parsed (``churnstream evaluate`` calls this
        directly). ``where`` = (partition, t, i) of the release, for repeat detection;
        ``release_ms`` its release time (the batch challenger's event-time schedule)."""
        part, pos = where[0], where[1:]
        if part >= 0 and pos <= self.positions.get(part, (-1, -1)):
            self.repeats += 1
            return None
        # a NaN/inf feature or a label other than 0/1 would poison the model: skip, count
        if label not in (0, 1) or isinstance(label, bool) or not all(
                map(math.isfinite, features.values())):
            self.invalid += 1
            return None
        y = label == 1
        if pos[0] >= 0:
            self._close_day(pos[0])
        champion = getattr(self, "champion", None)
        if champion is not None:  # every candidate predicts, then learns
            champion.learn(features, y, release_ms, user)
            p = champion.scores[champion.model_name][-1]
        else:
            if not getattr(self, "long_inputs", True):
                features = {n: v for n, v in features.items() if n not in LONG_RANGE_NAMES}
            x = model_inputs(features)
            p = float(self.pipeline.predict_proba_one(x).get(True, 0.5))
            self.pipeline.learn_one(x, y)
        self.metrics.update(p, y)
        self.rule_metrics.update(recency_frequency_risk(features, self.horizon_days), y)
        self.examples += 1
        self.labels[int(y)] += 1
        if part >= 0:
            self.positions[part] = pos
        return p

    def _close_day(self, anchor_ms: int) -> None:
        """A point of the quality history when this example begins a later anchor day."""
        history = getattr(self, "history", None)
        if history is None:
            history = self.history = QualityHistory()
        closed = history.closes(anchor_ms)
        if closed is None:
            return
        champion = getattr(self, "champion", None)
        if champion is not None:
            champion.flush()
            name = champion.champion
            history.add(closed, self.examples, name, champion.scores[name], champion.labels)
        else:
            name = "model"  # the pipeline's window, whoever speaks (old checkpoints)
            pairs = self.metrics.pairs
            history.add(closed, self.examples, name, [p for p, _ in pairs],
                        [y for _, y in pairs])

    def ready(self, min_labels: int, compare: bool = True) -> bool:
        """Whether a model speaks: the champion is not the cold-start rule (before the
        champion: ``core.scoring.model_speaks``)."""
        if getattr(self, "champion", None) is not None:
            assert self.champion is not None
            return self.champion.champion != RULE_NAME
        rule = getattr(self, "rule_metrics", None)  # None in checkpoints from before it
        return model_speaks(self.examples, min_labels, self.metrics.rocauc(),
                            rule.rocauc() if rule is not None and len(rule) else None,
                            compare)

    def scorer(self, version: int, min_labels: int, compare: bool = True,
               pipeline_name: str = "logreg") -> Scorer:
        """What workers serve with: the champion, calibrated (before the champion: the
        model once ``ready``, else the rule)."""
        if getattr(self, "champion", None) is not None:
            assert self.champion is not None
            return self.champion.scorer(version)
        return make_scorer(self.pipeline, pipeline_name, version, self.examples, min_labels,
                           self.horizon_days, ready=self.ready(min_labels, compare),
                           value_inputs=getattr(self, "value_inputs", False))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.metrics.summary())
        rule = getattr(self, "rule_metrics", None)
        if rule is not None:
            out["rule_rocauc"] = rule.rocauc()
        out.update(value_inputs=float(getattr(self, "value_inputs", False)),
                   examples=float(self.examples), label_0=float(self.labels[0]),
                   label_1=float(self.labels[1]), invalid=float(self.invalid),
                   repeats=float(self.repeats))
        ch = getattr(self, "champion", None)
        if ch is not None:
            out.update(champion=ch.champion, champion_since_ms=ch.since_ms,
                       champion_since_examples=ch.since_examples,
                       calibration=list(ch.calibration) if ch.calibration else None,
                       candidates=ch.metrics(), switches=list(ch.switches)[-10:])
        history = getattr(self, "history", None)
        out["history"] = list(history.points) if history is not None else []
        return out


def _value_inputs(value: Any, features: dict[str, float]) -> dict[str, float]:
    """The message's BG/NBD inputs; neutral ones (P(alive) 1, no expected purchase) for a
    message from a worker that did not write them."""
    if value is None:
        return {"bg_customer": float(features["days_since_last_purchase"] < 365.0),
                "bg_p_alive": 1.0, "bg_expected_purchases": 0.0, "bg_p_no_purchase": 0.0}
    # bg_p_no_purchase is absent from workers before it: neutral
    return {name: float(value[name]) if name in value or name != "bg_p_no_purchase" else 0.0
            for name in VALUE_INPUT_NAMES}


def new_state(settings: Settings) -> LearnerState:
    return make_state(settings.model_pipeline, settings.model_lr, settings.churn_horizon_days,
                      settings.metrics_window, settings.min_labels,
                      value_inputs=settings.model_value_inputs,
                      compare=settings.model_handoff == "compare",
                      every=settings.champion_every, margin=settings.champion_margin,
                      metric=settings.champion_metric, batch=settings.champion_batch,
                      batch_every_days=settings.batch_every_days,
                      judge=settings.champion_window)


def make_state(pipeline: str, lr: float, horizon_days: int, window: int, min_labels: int,
               value_inputs: bool = False, long_inputs: bool = True, compare: bool = True,
               every: int = 1000, margin: float = 0.005, metric: str = "rocauc",
               batch: bool = True, batch_every_days: int = 7, judge: int = 2000
               ) -> LearnerState:
    """A fresh learner state: the candidates (``pipeline`` is the model candidate) and
    their champion; ``churnstream evaluate`` builds its learners here too."""
    params: dict[str, Any] = {"lr": lr} if pipeline == "logreg" else {}
    champion = Champion(horizon_days, window, every, min_labels, margin, metric, pipeline,
                        params, value_inputs, batch_every_days, batch, compare, long_inputs,
                        judge)
    return LearnerState(champion.candidates[champion.model_name].pipeline, Prequential(window),
                        rule_metrics=Prequential(window), horizon_days=horizon_days,
                        value_inputs=value_inputs, long_inputs=long_inputs, champion=champion)
