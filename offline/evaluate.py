"""``churnstream evaluate FILE``: leakage-free offline evaluation through the live code.

The log is read in its own order, as the worker would see it, with the event-time
watermark as the clock, and goes through the same code as the live path, in process
(no broker, no Redis): ``core.apply`` (the reference of the Redis script) for the
per-user state, ``core.features`` for the features, ``core.labels`` for training
snapshots (the worker's daily anchors, sample and delayed release),
``LearnerState.learn_example`` (the learner's prequential step) for every online
pipeline, and ``core.scoring.make_scorer`` for what the system serves (the rule until
``min_labels``, then the model).

When the clock passes an evaluation anchor T (UTC midnight, every ``every_days``)
and before any later event is applied: first the training snapshots released at T
are learned (they were taken at T - H, so their labels are fully known at T), then
every user active in (T - H, T] is scored by each scorer as it stands. The label of
such a row is 1 if the user has no event in (T, T + H]; rows are settled when the
clock passes T + H. Anchors whose T + H lies beyond the log are not evaluated. No
feature uses an event after T and no score a label after T (tests/unit/test_evaluate).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.apply import DUPLICATE, REDELIVERED, MemoryUser, apply_event
from core.baselines import BatchBaseline, feature_matrix, hgb_available, recency_scores
from core.clock import ClockGuard
from core.evaluation import calibration, pooled_metrics, ranking_metrics
from core.events import Event, Rejected
from core.features import window_aggregates
from core.labels import DAY_MS, Example, due_anchors, first_anchor
from core.long_range import scoring_features
from core.scoring import RuleScorer
from core.timefmt import rfc3339
from core.value import summary_arrays
from offline.anchor_book import AnchorBook, run_now
from offline.eval_config import SHORT, EvalConfig
from offline.value_fits import SUFFIX, ValueTrack
from stream.anchors import Anchors, Release
from stream.learner.state import LearnerState, make_state

NOT_PROBABILITIES = frozenset({"recency", "bgnbd"})


@dataclass
class AnchorRows:
    """The rows of one evaluation anchor (features and scores are fixed at T)."""

    anchor_ms: int
    users: list[str]
    features: np.ndarray  # n x 17, in FEATURE_NAMES order
    scores: dict[str, np.ndarray]
    index: dict[str, int] = field(default_factory=dict)
    returned: np.ndarray | None = None  # 1 where the user came back in (T, T + H]

    def labels(self) -> np.ndarray:
        assert self.returned is not None
        return (1 - self.returned).astype(np.int8)


class Evaluator:
    def __init__(self, cfg: EvalConfig,
                 on_anchor: Callable[[AnchorRows], None] | None = None,
                 on_release: Callable[[Example], None] | None = None) -> None:
        self.cfg = cfg
        self.h_ms = cfg.horizon_days * DAY_MS
        self.users: dict[str, MemoryUser] = {}
        self.book = AnchorBook(self.users)  # what the shared anchors read and write
        self.models: dict[str, LearnerState] = {}
        for name in cfg.pipelines:
            # <pipeline>+value: with BG/NBD inputs; <pipeline>-long: without the long-range
            short = name.endswith(SHORT)
            base = name.removesuffix(SHORT).removesuffix(SUFFIX)
            self.models[name] = make_state(
                base, cfg.model_lr, cfg.horizon_days, cfg.metrics_window, cfg.min_labels,
                value_inputs=name.removesuffix(SHORT).endswith(SUFFIX), long_inputs=not short,
                compare=cfg.handoff_compare, every=cfg.champion_every,
                margin=cfg.champion_margin, metric=cfg.champion_metric,
                batch=cfg.champion_batch, batch_every_days=cfg.batch_every_days,
                judge=cfg.champion_window)
        self.hgb = BatchBaseline(cfg.hgb_max_examples) if cfg.hgb and hgb_available() else None
        self.rule = RuleScorer(cfg.horizon_days)
        self.with_value = [n for n in cfg.pipelines if n.endswith(SUFFIX)]
        # the candidates learn from the BG/NBD inputs (the stacked model, BG/NBD itself)
        self.value = ValueTrack(cfg.horizon_days, cfg.value_fit_every_days, cfg.value_params,
                                cfg.value_fit_lag_days, cfg.value_min_customers, self.users)
        # the worker's anchors (stream/anchors.py), over the book instead of Redis
        self.anchors = Anchors(self.book, self._learn, cfg.horizon_days, cfg.sample_rate,
                               warmup_days=cfg.warmup_days, value=self.value)
        self.on_anchor = on_anchor
        self.on_release = on_release  # every training example, as the learner gets it
        self.clock: int | None = None  # the watermark
        self.guard = ClockGuard(cfg.clock_step_ms, cfg.clock_users)
        self.done = 0  # the last anchor run
        self.next_eval: int | None = None
        self.pending: list[AnchorRows] = []
        self.settled: list[AnchorRows] = []
        self.events = 0
        self.rejected: dict[str, int] = {}  # rows that failed validation, by reason
        self.released = 0

    # --- the stream -------------------------------------------------------------
    def feed(self, ev: Event) -> None:
        t = self.guard.observe(ev.time_ms, ev.user_id)  # the clock after this event
        if self.clock is None:
            self.done = self.book.started = first_anchor(t)
            start = self.cfg.first_day if self.cfg.first_day is not None else \
                self.cfg.horizon_days
            self.next_eval = self.done + DAY_MS + start * DAY_MS
            self.clock = t
        for anchor in due_anchors(self.done, t):  # as the worker's processor
            self._anchor(anchor)
            self.done = anchor
        self.clock = max(self.clock, t)
        mu = self.users.get(ev.user_id)
        old_last = mu.state.last_ms if mu is not None else None
        status = apply_event(self.users, ev, 0, self.events)  # 30-day feature horizon
        self.events += 1
        if status in (DUPLICATE, REDELIVERED):
            return
        self.book.moved(ev.user_id, old_last)
        t = ev.time_ms
        for rows in self.pending:
            if rows.anchor_ms < t <= rows.anchor_ms + self.h_ms:
                i = rows.index.get(ev.user_id)
                if i is not None:
                    assert rows.returned is not None
                    rows.returned[i] = 1

    def _anchor(self, anchor_ms: int) -> None:
        # settle evaluation rows whose label window has closed
        while self.pending and self.pending[0].anchor_ms + self.h_ms <= anchor_ms:
            self.settled.append(self.pending.pop(0))
        # the live anchor: value fit, snapshots at A, the release of A - H (to _learn)
        run_now(self.anchors.run(0, anchor_ms))
        if self.next_eval is not None and anchor_ms >= self.next_eval:
            self.next_eval = anchor_ms + self.cfg.every_days * DAY_MS
            self._evaluate(anchor_ms, self.book.active(anchor_ms - self.h_ms, anchor_ms))

    async def _learn(self, releases: Sequence[Release]) -> None:
        """The training sink: what the learner does with ``training.examples``."""
        for r in releases:
            ex = r.example()
            if self.on_release is not None:
                self.on_release(ex)
            feats = dict(ex.features)  # with the long-range and BG/NBD inputs
            for model in self.models.values():
                model.learn_example(feats, ex.label, release_ms=ex.release_ms,
                                    user=ex.user_id)
            if self.hgb is not None:
                self.hgb.add(feats, ex.label)
            self.released += 1

    def _evaluate(self, anchor_ms: int, active: list[str]) -> None:
        if not active:
            return
        aggs = [window_aggregates(self.users[u].state, anchor_ms) for u in active]
        feats = [scoring_features(a) for a in aggs]
        scores: dict[str, np.ndarray] = {}
        sums = summary_arrays(aggs)  # the live path's summaries
        expected = self.value.expected(sums)
        if expected is not None and self.cfg.bgnbd:
            scores["bgnbd"] = -expected  # fewer expected purchases = riskier
        extras = self.value.extras(sums)
        given = [{**f, **e} for f, e in zip(feats, extras, strict=True)]
        for i, (name, m) in enumerate(self.models.items()):
            # what the worker serves: the champion, calibrated (as of this anchor)
            scorer = m.scorer(m.examples, self.cfg.min_labels, self.cfg.handoff_compare, name)
            scores[f"live:{name}"] = np.asarray(scorer.score(given)[0], dtype=np.float64)
            if i == 0 and m.champion is not None:  # each candidate alone, raw
                for cname in m.champion.scores:
                    if m.champion.eligible(cname):
                        raw = m.champion.raw_scorer(cname, m.examples).score(given)[0]
                        scores[f"cand:{cname}"] = np.asarray(raw, dtype=np.float64)
        scores["rule"] = np.asarray(self.rule.score(feats)[0], dtype=np.float64)
        scores["recency"] = recency_scores(feats)
        matrix = feature_matrix(feats)
        if self.hgb is not None and self.hgb.fit():
            hgb = self.hgb.score(matrix)
            if hgb is not None:
                scores["hgb"] = hgb
        rows = AnchorRows(anchor_ms, active, matrix, scores,
                          {u: i for i, u in enumerate(active)}, np.zeros(len(active), np.int8))
        if self.on_anchor is not None:
            self.on_anchor(rows)
        self.pending.append(rows)

    # --- results ----------------------------------------------------------------
    def results(self) -> dict[str, Any]:
        """Per-anchor metrics; pooled over the anchors at which every scorer scored (the
        batch baseline needs some labels first), and over the last third of those (the
        steady state, after every model's warm-up)."""
        cfg = self.cfg
        names = sorted({n for r in self.settled for n in r.scores})
        anchors = []
        for rows in self.settled:
            y = rows.labels()
            anchors.append({"anchor": rfc3339(rows.anchor_ms), "users": len(rows.users),
                            "churned": int(y.sum()), "scorers": {
                                name: ranking_metrics(s, y, cfg.ks, _prob(name))
                                for name, s in rows.scores.items()}})
        # candidates alone (cand:*) score once eligible: pooled where they did, within these
        common = [r for r in self.settled
                  if all(n in r.scores for n in names if not n.startswith("cand:"))]
        tail = common[len(common) - max(1, len(common) // 3):] if common else []
        pooled, final, calib, parts_of = {}, {}, {}, {}
        for name in names:
            prob = _prob(name)
            parts = [(r.scores[name], r.labels()) for r in common if name in r.scores]
            parts_of[name] = parts
            pooled[name] = pooled_metrics(parts, cfg.ks, prob)
            final[name] = pooled_metrics([(r.scores[name], r.labels()) for r in tail
                                          if name in r.scores], cfg.ks, prob)
            if prob and parts:
                calib[name] = calibration(np.concatenate([s for s, _ in parts]),
                                          np.concatenate([y for _, y in parts]),
                                          cfg.calibration_bins)
        return {
            "config": {k: (list(v) if isinstance(v, tuple) else v)
                       for k, v in cfg.__dict__.items()},
            "log": {"events": self.events, "users": len(self.users),
                    "rejected_rows": sum(self.rejected.values()),
                    "rejected_by_reason": dict(sorted(self.rejected.items())),
                    "clock": rfc3339(self.clock) if self.clock is not None else None,
                    "training_examples": self.released,
                    "unsettled_anchors": [rfc3339(r.anchor_ms) for r in self.pending]},
            "anchors": anchors, "pooled": pooled,
            "pooled_anchors": [rfc3339(r.anchor_ms) for r in common],
            "final": final, "final_anchors": [rfc3339(r.anchor_ms) for r in tail],
            "calibration": calib,
            "models": {name: m.summary() for name, m in self.models.items()},
            "hgb_trained_on": self.hgb.trained_on if self.hgb is not None else None,
            "_parts": parts_of,
        }


def _prob(scorer: str) -> bool:
    """Whether a scorer's scores are probabilities (Brier, calibration); candidates alone
    are raw scores (ranks only)."""
    return scorer not in NOT_PROBABILITIES and not scorer.startswith("cand:")


def run(events: Iterable[Event | Rejected], cfg: EvalConfig, progress: bool = False,
        on_anchor: Callable[[AnchorRows], None] | None = None) -> dict[str, Any]:
    """Evaluate a stream of events; a :class:`Rejected` row is counted by its reason and
    skipped, as the worker sends it to the DLQ."""
    ev_ = Evaluator(cfg, on_anchor)
    started = last = time.monotonic()
    for ev in events:
        if isinstance(ev, Rejected):
            ev_.rejected[ev.reason] = ev_.rejected.get(ev.reason, 0) + 1
            continue
        ev_.feed(ev)
        if progress and ev_.events % 50_000 == 0 and time.monotonic() - last > 0.5:
            last = time.monotonic()
            _progress(ev_, last - started)
    if progress:
        _progress(ev_, time.monotonic() - started)
        print(file=sys.stderr)
    out = ev_.results()
    seconds = time.monotonic() - started
    out["timing"] = {"seconds": round(seconds, 2),
                     "events_per_second": round(ev_.events / seconds) if seconds else math.nan}
    return out


def _progress(ev: Evaluator, seconds: float) -> None:
    clock = rfc3339(ev.clock)[:10] if ev.clock is not None else "-"
    done = len(ev.settled) + len(ev.pending)
    print(f"\r  {ev.events:>12,} events  clock {clock}  users {len(ev.users):,}  "
          f"anchors {done}  {ev.events / max(seconds, 1e-9):,.0f} ev/s  {seconds:,.0f}s",
          end="", file=sys.stderr, flush=True)

