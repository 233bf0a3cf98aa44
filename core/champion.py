"""Online model selection: candidates learn side by side, the best one speaks (pure).

Every released example is scored by every candidate (:mod:`core.candidates`,
:mod:`core.batch`) before any of them learns it. The scores and labels of the last
``window`` examples are kept for every candidate, so all are judged on the same
examples. Every ``every`` examples (and at every/8, every/4 and every/2 before that:
:func:`due`; the label-free candidates can beat the rule long before the first
``every``) the champion is decided again: the candidate with
the best ``metric`` (``rocauc``, ``pr_auc`` or ``lift_at_10``) over the newest
``judge`` examples of the window replaces the champion only when it beats it by more
than ``margin`` (no flip-flopping). A candidate that learns is eligible once it has
learned ``min_labels`` examples; the
cold-start rule speaks until someone beats it. The decision then calibrates the
champion on the window (:func:`core.candidates.platt`, strictly increasing, so ranks,
tiers and Top-K are the candidate's own) and ``risk`` reads as P(no activity in H).

Decisions depend only on the example stream (its order and count), never on time or
chunking, so the live learner and ``evaluate`` pick the same champion at the same
example.

>>> ch = Champion(horizon_days=30, window=400, every=100, min_labels=50, margin=0.005)
>>> import random
>>> rng = random.Random(3)
>>> for i in range(600):
...     d = rng.uniform(0, 40)
...     f = example(d, rng)
...     _ = ch.learn(f, rng.random() < (0.9 if d > 25 else 0.1), release_ms=i)
>>> ch.champion != "rule:recency-frequency", sorted(ch.metrics())[:2]
(True, ['batch:hgb', 'bgnbd'])
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import deque
from collections.abc import Mapping
from typing import Any

import numpy as np

from core import blend
from core.batch import BatchCandidate
from core.candidates import (
    Calibrated,
    Candidate,
    FixedCandidate,
    OnlineCandidate,
    platt,
)
from core.evaluation import pr_auc, ranking_metrics, rocauc
from core.fast_linear import share_scaler
from core.features import FEATURE_NAMES
from core.long_range import LONG_RANGE_NAMES
from core.model import VALUE_INPUT_NAMES, model_inputs
from core.rules import RULE_NAME
from core.scoring import Scorer

METRICS = ("rocauc", "pr_auc", "lift_at_10")
BLEND = "blend"
ALL_INPUTS = (*FEATURE_NAMES, *LONG_RANGE_NAMES, *VALUE_INPUT_NAMES)


def _metric(name: str, s: np.ndarray, y: np.ndarray) -> float:
    if name == "rocauc":
        return rocauc(s, y)
    if name == "pr_auc":
        return pr_auc(s, y)
    return float(ranking_metrics(s, y, (0.10,), False)["lift_at_10"])


MIN_JUDGED = 200  # the fewest examples a decision may look at once models are eligible


def due(examples: int, every: int) -> bool:
    """Whether a decision falls on the ``examples``-th example.

    >>> [n for n in range(1, 3001) if due(n, 1000)]
    [125, 250, 500, 1000, 2000, 3000]
    """
    if examples % every == 0:
        return True
    return examples < every and any(examples == every // k for k in (2, 4, 8) if every // k)


class Champion:
    def __init__(self, horizon_days: int = 30, window: int = 10_000, every: int = 1000,
                 min_labels: int = 1000, margin: float = 0.002, metric: str = "rocauc",
                 pipeline: str = "logreg", params: dict[str, Any] | None = None,
                 value_inputs: bool = False, batch_every_days: int = 7,
                 batch: bool = True, compare: bool = True, long_inputs: bool = True,
                 judge: int = 2000) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}")
        params = params or {}
        self.horizon, self.window, self.every = horizon_days, window, every
        self.judge = min(judge, window)  # decisions look at the newest examples only
        self.min_labels, self.margin, self.metric = min_labels, margin, metric
        self.compare = compare  # False (CHURN_MODEL_HANDOFF=count): the model from min_labels
        self.model_name = f"model:{pipeline}"
        cands: list[Any] = [
            OnlineCandidate(self.model_name, pipeline, params, value_inputs, long_inputs),
            OnlineCandidate("stacked:logreg", "logreg", {"lr": params.get("lr", 0.005)}, True),
            FixedCandidate("bgnbd", horizon_days), FixedCandidate("recency", horizon_days),
            FixedCandidate("rule", horizon_days)]
        if batch:
            cands.append(BatchCandidate(ALL_INPUTS, every_days=batch_every_days,
                                        min_examples=min(min_labels, 500) or 1,
                                        horizon_days=horizon_days))
        self.candidates: dict[str, Any] = {c.name: c for c in cands}
        self.shared = share_scaler(cands[0], cands[1])
        # the blend (core.blend): a logistic regression over these candidates' scores
        self.blend_of = tuple((c.name, self.transform(c.name)) for c in cands
                              if c.name != RULE_NAME)
        self.blend_w: np.ndarray | None = None
        self.bg_e: deque[float] = deque(maxlen=window)  # log1p E[purchase days in H]
        self._unblended = 0
        names = [*self.candidates, BLEND]
        self.scores: dict[str, deque[float]] = {n: deque(maxlen=window) for n in names}
        self.labels: deque[int] = deque(maxlen=window)
        self.examples = 0
        self.champion = RULE_NAME
        self.since_ms: int | None = None  # release time of the example that decided it
        self.since_examples = 0
        self.calibration: tuple[float, float] | None = None
        self.switches: deque[dict[str, Any]] = deque(maxlen=50)
        self.decided: dict[str, float] = {}  # the metrics of the last decision

    def sync(self) -> None:
        """Bring the River objects up to date (the shared pair learns on arrays)."""
        shared = getattr(self, "shared", None)
        if shared is not None:
            shared.sync()

    def __getstate__(self) -> dict[str, Any]:
        self.sync()
        return self.__dict__.copy()

    # --- learning ------------------------------------------------------------------
    def learn(self, f: Mapping[str, float], y: bool, release_ms: int, user: str = "") -> float:
        """Score with every candidate, then learn; returns the champion's raw score.
        ``user``: the example's user id (the batch challenger's cross-fitting folds)."""
        spoke = math.nan
        x = model_inputs(f)  # once, for every online candidate
        shared = getattr(self, "shared", None)
        if shared is not None:
            pair = shared.learn(x, y)
        for name, c in self.candidates.items():
            if shared is not None and name in pair:
                s = pair[name]
            elif isinstance(c, BatchCandidate):
                c.queue(f, y, release_ms, fold_of(user))  # scored in chunks, at flush
                continue
            elif isinstance(c, OnlineCandidate):
                xc = c.inputs(x)
                s = c.predict_x(xc)
                c.learn_x(xc, y)
            else:
                s = c.predict(f)
                c.learn(f, y)
            self.scores[name].append(s)
            if name == self.champion:
                spoke = s
        self.labels.append(int(y))
        self.bg_e.append(math.log1p(max(0.0, f["bg_expected_purchases"])))
        self._unblended += 1
        self.examples += 1
        if due(self.examples, self.every):
            self.decide(release_ms)
        return spoke

    def flush(self) -> None:
        for name, c in self.candidates.items():
            if isinstance(c, BatchCandidate):
                self.scores[name].extend(0.5 if math.isnan(s) else s for s, _ in c.flush())
        m = self._unblended  # every component has scored them now: blend them
        if m:
            self.scores[BLEND].extend(blend.score(self._blend_inputs(m), self.blend_w).tolist())
            self._unblended = 0

    def _blend_inputs(self, m: int) -> np.ndarray:
        """The blend's inputs of the last ``m`` examples of the window."""
        cols = [blend.transform(np.array(list(self.scores[n])[-m:]), kind)
                for n, kind in self.blend_of]
        return np.column_stack([*cols, np.array(list(self.bg_e)[-m:])])

    # --- judging -------------------------------------------------------------------
    def metrics(self) -> dict[str, dict[str, float]]:
        """Every candidate's prequential metrics over the same window."""
        self.flush()
        y = np.fromiter(self.labels, np.int8, len(self.labels))
        out = {}
        for name in sorted(self.scores):
            s = np.fromiter(self.scores[name], float, len(self.scores[name]))
            m = ranking_metrics(s, y, (0.05, 0.10, 0.20), False) if len(y) else {}
            out[name] = {"rocauc": m.get("rocauc", math.nan), "pr_auc": m.get("pr_auc", math.nan),
                         "lift_at_10": m.get("lift_at_10", math.nan),
                         "precision_at_10": m.get("precision_at_10", math.nan),
                         "eligible": float(self.eligible(name))}
        return out

    def eligible(self, name: str) -> bool:
        if name == BLEND:
            return self.blend_w is not None and self.examples >= self.min_labels
        c = self.candidates[name]
        if isinstance(c, OnlineCandidate):
            return c.learned >= self.min_labels
        if isinstance(c, BatchCandidate):
            return c.model is not None and c.trained_on >= self.min_labels
        return True

    def decide(self, release_ms: int) -> None:
        self.flush()
        y = np.fromiter(self.labels, np.int8, len(self.labels))
        if y.min(initial=0) == y.max(initial=0):
            return  # one class so far: nothing can be judged
        # judged on the newest ``judge`` examples: a candidate that learns fast is not held
        # back by its own first predictions (the whole window made the rule speak for
        # weeks after the models ranked better)
        j = min(getattr(self, "judge", len(y)), len(y))
        # and, once there are enough, only the examples after the first min_labels: a
        # learning candidate is not judged on the predictions it made before it could
        # be eligible (the rule kept speaking for a thousand examples after the model
        # ranked better)
        after = self.examples - self.min_labels
        if after >= MIN_JUDGED:
            j = min(j, after)
        yj = y[-j:]
        values = {n: _metric(self.metric, np.fromiter(self.scores[n], float, len(y))[-j:], yj)
                  for n in self.scores if self.eligible(n) and len(self.scores[n]) == len(y)}
        if yj.min() == yj.max():
            return
        values = {n: v for n, v in values.items() if math.isfinite(v)}
        self.decided = values
        if not self.compare:
            best = self.model_name if self.eligible(self.model_name) else RULE_NAME
        else:
            best = max(sorted(values), key=lambda n: values[n], default=self.champion)
            current = values.get(self.champion, -math.inf)
            if best != self.champion and not values[best] > current + self.margin:
                best = self.champion
        if best != self.champion:
            self.switches.append({"examples": self.examples, "release_ms": release_ms,
                                  "from": self.champion, "to": best,
                                  "metric": values.get(best), "was": values.get(self.champion)})
            self.champion, self.since_ms, self.since_examples = best, release_ms, self.examples
        s = np.fromiter(self.scores[self.champion], float, len(y))
        self.calibration = platt(s, y, self.transform(self.champion)) \
            if len(y) >= 200 else None
        if len(y) >= 200:  # the blend's weights for the examples from now on
            self.blend_w = blend.fit(self._blend_inputs(len(y)), y.astype(float))

    def transform(self, name: str) -> str:
        return "log1p" if name == "recency" else "logit"

    # --- serving -------------------------------------------------------------------
    def raw_scorer(self, name: str, version: int) -> Scorer:
        """One candidate (the blend too) as a vectorised scorer of raw scores."""
        if name == BLEND:
            parts = [(self.candidates[n].scorer(version), kind) for n, kind in self.blend_of]
            return blend.BlendScorer(parts, self.blend_w, version)
        c: Candidate = self.candidates[name]
        return c.scorer(version)

    def scorer(self, version: int) -> Scorer:
        """The champion as a vectorised scorer, its risks calibrated."""
        return Calibrated(self.raw_scorer(self.champion, version), self.calibration,
                          self.transform(self.champion), self.horizon)


def fold_of(user: str) -> int:
    """The user's cross-fitting fold (stable across processes and runs).

    >>> [fold_of(f"u{i:07d}") for i in range(4, 10)]
    [0, 1, 1, 1, 0, 1]
    """
    return hashlib.blake2b(user.encode(), digest_size=8).digest()[0] & 1


def example(days: float, rng: random.Random) -> dict[str, float]:
    """A random example silent for ``days`` (doctest and test helper)."""
    f = {n: rng.random() for n in ALL_INPUTS}
    f.update(days_since_last_event=days, active_days_30d=float(rng.randint(1, 10)),
             bg_customer=1.0)
    return f
