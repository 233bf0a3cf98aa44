"""Customer value inside ``churnstream evaluate``: a BG/NBD refit on the users' purchase
summaries as of an anchor, the BG/NBD expected-purchases baseline, and BG/NBD inputs for
the ``<pipeline>+value`` variants of the online model.

Summaries use only purchase days at or before the anchor's day (the state holds nothing
later: the evaluator applies the log in order). A user who has not purchased counts as
a customer born at the first event with no purchase (x = 0, t_x = 0, T = days since the
first event), so every active user gets a number; ``bg_customer`` tells the model which.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from core import bgnbd
from core.apply import MemoryUser
from core.bgnbd import BGNBD
from core.features import DAY_MS
from core.model import model_inputs
from core.rules import recency_frequency_risk

SUFFIX = "+value"
EXTRA_NAMES = ("bg_customer", "bg_p_alive", "bg_expected_purchases")


Summaries = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def summaries(users: Sequence[MemoryUser], anchor_ms: int) -> Summaries:
    """(customer flag, x, t_x, T) in whole days at ``anchor_ms`` for each user."""
    today = anchor_ms // DAY_MS
    n = len(users)
    cust, x, t_x, T = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    for i, mu in enumerate(users):
        days = mu.state.purchase_days
        if days:
            first = min(days)
            cust[i], x[i], t_x[i], T[i] = 1.0, len(days) - 1, max(days) - first, today - first
        else:
            T[i] = today - mu.state.first_ms // DAY_MS
    return cust, x, t_x, T


class ValueTrack:
    """BG/NBD parameters refit every ``every_days`` on all users (compressed rows)."""

    def __init__(self, horizon_days: int, every_days: int = 7) -> None:
        self.horizon = horizon_days
        self.every_ms = every_days * DAY_MS
        self.params: BGNBD | None = None
        self.fitted_at = -1
        self.fits = 0

    def maybe_fit(self, users: dict[str, MemoryUser], anchor_ms: int) -> None:
        if self.params is not None and anchor_ms - self.fitted_at < self.every_ms:
            return
        cust, x, t_x, T = summaries(list(users.values()), anchor_ms)
        keep = cust > 0
        if keep.sum() < 50:
            return
        rows, weight = np.unique(np.stack([x[keep], t_x[keep], T[keep]], axis=1), axis=0,
                                 return_counts=True)
        start = self.params or bgnbd.START
        self.params = bgnbd.fit(rows[:, 0], rows[:, 1], rows[:, 2], weights=weight, start=start)
        self.fitted_at = anchor_ms
        self.fits += 1

    def expected(self, sums: Summaries) -> np.ndarray | None:
        """E[purchase days in the next H days] per user of :func:`summaries` (None before
        the first fit)."""
        if self.params is None:
            return None
        _, x, t_x, T = sums
        return np.asarray(bgnbd.expected_purchases(self.params, self.horizon, x, t_x, T))

    def extras(self, sums: Summaries) -> list[dict[str, float]]:
        """The model's BG/NBD inputs per user (neutral before the first fit)."""
        cust, x, t_x, T = sums
        if self.params is None:
            return [{"bg_customer": float(c), "bg_p_alive": 1.0, "bg_expected_purchases": 0.0}
                    for c in cust]
        alive = bgnbd.p_alive(self.params, x, t_x, T)
        exp = bgnbd.expected_purchases(self.params, self.horizon, x, t_x, T)
        return [{"bg_customer": float(c), "bg_p_alive": float(a),
                 "bg_expected_purchases": float(e) if math.isfinite(e) else 0.0}
                for c, a, e in zip(cust, alive, exp, strict=True)]


def value_scores(state: Any, feats: Sequence[dict[str, float]],
                 extras: Sequence[dict[str, float]], cfg: Any) -> np.ndarray:
    """What a ``+value`` variant would serve: the rule until the model may speak (the
    same handoff as the live scorer), then the pipeline on features + BG/NBD inputs."""
    if not (state.examples >= cfg.min_labels and state.ready(cfg.min_labels)):
        return np.array([recency_frequency_risk(f, cfg.horizon_days) for f in feats])
    pipe = state.pipeline
    return np.array([pipe.predict_proba_one(model_inputs({**f, **e})).get(True, 0.0)
                     for f, e in zip(feats, extras, strict=True)])
