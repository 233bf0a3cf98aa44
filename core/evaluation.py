"""Offline ranking metrics for one anchor (or pooled anchors): what churn teams judge a
targeting list by. Pure numpy; the prequential window (``core.prequential``) is the
brute-force reference in the tests, and scikit-learn where installed.

- ROC-AUC: probability that a churner outranks a non-churner (ties count half).
- PR-AUC: average precision, sum over score thresholds of (R_n - R_n-1) * P_n.
- Precision/Recall/Lift@K: the top ``ceil(K * n)`` by score (ties in input order).
- Brier score and a calibration table (equal-width probability bins), for scorers
  whose score is a probability.
- Pooled over anchors (:func:`pooled_metrics`): each anchor chooses its own top K.

>>> s = [0.9, 0.8, 0.7, 0.6, 0.3, 0.2, 0.1, 0.05]
>>> y = [1, 1, 0, 1, 0, 0, 0, 0]
>>> m = ranking_metrics(s, y, ks=(0.25,))
>>> round(m["rocauc"], 4), round(m["pr_auc"], 4), m["precision_at_25"], m["lift_at_25"]
(0.9333, 0.9167, 1.0, 2.6666666666666665)
>>> calibration([0.05, 0.15, 0.12], [0, 1, 0], bins=10)[1]
{'lo': 0.1, 'hi': 0.2, 'n': 2, 'predicted': 0.135, 'observed': 0.5}
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

KS = (0.05, 0.10, 0.20)


def _arrays(scores: Sequence[float] | np.ndarray,
            labels: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int8)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError("scores and labels must be 1-d and of equal length")
    return s, y


def rocauc(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    s, y = _arrays(scores, labels)
    pos = int(y.sum())
    neg = len(y) - pos
    if not pos or not neg:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # average 1-based ranks over runs of equal scores
    starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
    ends = np.r_[starts[1:], len(ss)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def pr_auc(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> float:
    """Average precision (thresholds at the distinct scores, as scikit-learn computes it)."""
    s, y = _arrays(scores, labels)
    pos = int(y.sum())
    if not pos:
        return math.nan
    order = np.argsort(-s, kind="mergesort")
    ss, yy = s[order], y[order]
    tp = np.cumsum(yy)
    last = np.r_[ss[1:] != ss[:-1], True]  # the end of each run of equal scores
    tp_at, n_at = tp[last].astype(np.float64), (np.flatnonzero(last) + 1).astype(np.float64)
    recall_steps = np.diff(np.r_[0.0, tp_at]) / pos
    return float(np.sum(recall_steps * tp_at / n_at))


def top_k(scores: np.ndarray, k: float) -> np.ndarray:
    """Indices of the top ``ceil(k * n)`` scores (ties in input order)."""
    if not 0 < k <= 1:
        raise ValueError("k is a fraction in (0, 1]")
    n = max(1, math.ceil(k * len(scores)))
    return np.argsort(-scores, kind="mergesort")[:n]


def ranking_metrics(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
                    ks: Sequence[float] = KS, probabilities: bool = True) -> dict[str, float]:
    """All metrics of one anchor (:func:`pooled_metrics` of a single part)."""
    out = pooled_metrics([_arrays(scores, labels)], ks, probabilities)
    del out["anchors"]
    return out


def calibration(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
                bins: int = 10) -> list[dict[str, Any]]:
    """Equal-width bins over [0, 1]: count, mean predicted probability, observed rate."""
    s, y = _arrays(scores, labels)
    idx = np.minimum((np.clip(s, 0.0, 1.0) * bins).astype(np.int64), bins - 1)
    rows = []
    for b in range(bins):
        mask = idx == b
        cnt = int(mask.sum())
        rows.append({"lo": round(b / bins, 10), "hi": round((b + 1) / bins, 10), "n": cnt,
                     "predicted": round(float(s[mask].mean()), 10) if cnt else math.nan,
                     "observed": round(float(y[mask].mean()), 10) if cnt else math.nan})
    return rows


def lift_curve(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
               points: int = 50) -> list[tuple[float, float]]:
    """(share targeted, lift) at ``points`` evenly spaced shares."""
    return pooled_lift_curve([_arrays(scores, labels)], points)


def pr_curve(scores: Sequence[float] | np.ndarray,
             labels: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at every distinct score threshold, highest first."""
    s, y = _arrays(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    ss, tp = s[order], np.cumsum(y[order])
    last = np.r_[ss[1:] != ss[:-1], True]
    n_at = np.flatnonzero(last) + 1
    pos = max(1, int(y.sum()))
    return tp[last] / pos, tp[last] / n_at


def pooled_metrics(parts: Sequence[tuple[np.ndarray, np.ndarray]], ks: Sequence[float] = KS,
                   probabilities: bool = True) -> dict[str, float]:
    """Metrics over several anchors, each anchor its own targeting decision: the top K of
    every anchor are chosen separately and their hits summed (Precision/Recall/Lift@K);
    ROC-AUC and PR-AUC are the mean over anchors (scores of different anchors need not
    share a scale: the scorer may change between them); Brier over all rows.

    >>> a = (np.array([0.9, 0.1, 0.2, 0.3]), np.array([1, 0, 0, 0]))
    >>> b = (np.array([0.5, 0.6, 0.7, 0.8]), np.array([0, 0, 1, 1]))
    >>> m = pooled_metrics([a, b], ks=(0.25,))
    >>> m["precision_at_25"], m["lift_at_25"], m["rocauc"]
    (1.0, 2.6666666666666665, 1.0)
    """
    n = sum(len(y) for _, y in parts)
    pos = sum(int(y.sum()) for _, y in parts)
    out: dict[str, float] = {"anchors": float(len(parts)), "n": float(n),
                             "positives": float(pos), "base_rate": pos / n if n else math.nan}
    for key, fn in (("rocauc", rocauc), ("pr_auc", pr_auc)):
        vals = [fn(s, y) for s, y in parts]
        vals = [v for v in vals if not math.isnan(v)]
        out[key] = float(np.mean(vals)) if vals else math.nan
    for k in ks:
        pct = round(k * 100)
        hits = chosen = 0
        for s, y in parts:
            if len(y):
                top = top_k(np.asarray(s, dtype=np.float64), k)
                hits += int(np.asarray(y)[top].sum())
                chosen += len(top)
        precision = hits / chosen if chosen else math.nan
        out[f"precision_at_{pct}"] = precision
        out[f"recall_at_{pct}"] = hits / pos if pos else math.nan
        out[f"lift_at_{pct}"] = precision / (pos / n) if pos else math.nan
    if probabilities and n:
        out["brier"] = float(sum(float(np.sum((np.asarray(s) - y) ** 2)) for s, y in parts) / n)
    else:
        out["brier"] = math.nan
    return out


def pooled_lift_curve(parts: Sequence[tuple[np.ndarray, np.ndarray]],
                      points: int = 50) -> list[tuple[float, float]]:
    """Lift at evenly spaced shares, each anchor's top share chosen separately."""
    n = sum(len(y) for _, y in parts)
    pos = sum(int(y.sum()) for _, y in parts)
    if not pos:
        return []
    cums = [np.cumsum(np.asarray(y)[np.argsort(-np.asarray(s), kind="mergesort")])
            for s, y in parts]
    out = []
    for i in range(1, points + 1):
        k = i / points
        hits = chosen = 0
        for c in cums:
            m = max(1, math.ceil(k * len(c)))
            hits += int(c[m - 1])
            chosen += m
        out.append((k, hits / chosen / (pos / n)))
    return out
