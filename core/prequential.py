"""Prequential (test-then-train) model quality over a rolling window of labelled scores.

Exact metrics on the last ``window`` examples: ROC-AUC by ranks (ties count
half), log-loss, and the Top-K targeting metrics churn teams use: Precision@K,
Recall@K and Lift@K for K as a fraction of the window.

>>> m = Prequential(window=8)
>>> for p, y in [(0.9, 1), (0.8, 1), (0.7, 0), (0.6, 1), (0.3, 0), (0.2, 0), (0.1, 0), (0.05, 0)]:
...     m.update(p, y)
>>> round(m.rocauc(), 4), m.precision_at(0.25), m.lift_at(0.25)
(0.9333, 1.0, 2.6666666666666665)
"""

from __future__ import annotations

import math
from collections import deque

EPS = 1e-15


class Prequential:
    def __init__(self, window: int = 10_000) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.window = window
        self.pairs: deque[tuple[float, int]] = deque(maxlen=window)
        self.seen = 0
        self.positives_seen = 0

    def update(self, p: float, y: int | bool) -> None:
        """Record the prediction ``p`` (probability of churn) made before learning label ``y``."""
        self.pairs.append((float(p), int(bool(y))))
        self.seen += 1
        self.positives_seen += int(bool(y))

    def __len__(self) -> int:
        return len(self.pairs)

    def rocauc(self) -> float:
        """Probability that a random churner outranks a random non-churner (NaN if one class)."""
        ranked = sorted(self.pairs)
        pos = sum(y for _, y in ranked)
        neg = len(ranked) - pos
        if not pos or not neg:
            return math.nan
        rank_sum, i = 0.0, 0
        while i < len(ranked):  # average ranks over ties
            j = i
            while j + 1 < len(ranked) and ranked[j + 1][0] == ranked[i][0]:
                j += 1
            avg = (i + j) / 2 + 1
            rank_sum += avg * sum(y for _, y in ranked[i:j + 1])
            i = j + 1
        return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)

    def logloss(self) -> float:
        if not self.pairs:
            return math.nan
        total = 0.0
        for p, y in self.pairs:
            q = min(1 - EPS, max(EPS, p))
            total -= math.log(q) if y else math.log(1 - q)
        return total / len(self.pairs)

    def _top(self, k: float) -> list[tuple[float, int]]:
        if not 0 < k <= 1:
            raise ValueError("k is a fraction in (0, 1]")
        n = max(1, math.ceil(k * len(self.pairs)))
        return sorted(self.pairs, key=lambda py: -py[0])[:n]

    def precision_at(self, k: float) -> float:
        """Share of churners among the top ``k`` fraction by risk."""
        if not self.pairs:
            return math.nan
        top = self._top(k)
        return sum(y for _, y in top) / len(top)

    def recall_at(self, k: float) -> float:
        pos = sum(y for _, y in self.pairs)
        if not pos:
            return math.nan
        return sum(y for _, y in self._top(k)) / pos

    def lift_at(self, k: float) -> float:
        """Precision@K over the base rate: how much better than targeting at random."""
        pos = sum(y for _, y in self.pairs)
        if not pos:
            return math.nan
        return self.precision_at(k) / (pos / len(self.pairs))

    def summary(self, ks: tuple[float, ...] = (0.05, 0.10, 0.20)) -> dict[str, float]:
        out = {"rocauc": self.rocauc(), "logloss": self.logloss(), "examples": float(self.seen),
               "window": float(len(self.pairs))}
        for k in ks:
            pct = round(k * 100)
            out[f"precision_at_{pct}"] = self.precision_at(k)
            out[f"recall_at_{pct}"] = self.recall_at(k)
            out[f"lift_at_{pct}"] = self.lift_at(k)
        return out
