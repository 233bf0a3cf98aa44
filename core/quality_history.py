"""Model quality over time: one point per anchor day learned (pure).

The learner judges its scorers prequentially over a rolling window
(:mod:`core.prequential`, :mod:`core.champion`). This keeps what that window said at
the end of each anchor day, for the speaking scorer: when the first example of a later
anchor day arrives, the day before is closed with the window's ROC-AUC and Lift@10 %
as they stand, the scorer that was speaking, and the examples learned so far. Releases
of several partitions interleave a little (one partition may still release day d while
another has begun d + 1): an example of a day already closed adds to the window but
opens no point. The newest ``max_points`` days are kept (a checkpoint carries them;
``GET /v1/model`` and the console's overview show them).

>>> h = QualityHistory(max_points=2)
>>> h.closes(5 * DAY_MS + 7), h.closes(5 * DAY_MS + 9)  # the first day opens, no point
(None, None)
>>> h.closes(6 * DAY_MS)  # day 6 begins: day 5 closes
432000000
>>> h.add(432000000, 120, "bgnbd", [0.9, 0.2, 0.7, 0.1], [1, 0, 1, 0])
>>> h.points[0]["rocauc"], h.points[0]["lift_at_10"], h.points[0]["scorer"]
(1.0, 2.0, 'bgnbd')
>>> h.closes(5 * DAY_MS), h.closes(8 * DAY_MS)  # a late day-5 example; then day 8
(None, 518400000)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.evaluation import ranking_metrics

DAY_MS = 86_400_000
MAX_POINTS = 400


class QualityHistory:
    def __init__(self, max_points: int = MAX_POINTS) -> None:
        self.max_points = max_points
        self.day: int | None = None  # the anchor day now being learned
        self.points: list[dict[str, Any]] = []

    def closes(self, anchor_ms: int) -> int | None:
        """The start (ms) of the anchor day that an example of ``anchor_ms`` closes, or
        None when it closes none."""
        day = anchor_ms // DAY_MS
        if self.day is None or day <= self.day:
            self.day = day if self.day is None else self.day
            return None
        closed, self.day = self.day, day
        return closed * DAY_MS

    def add(self, t_ms: int, examples: int, scorer: str, scores: Sequence[float],
            labels: Sequence[int]) -> None:
        """Record the window of the speaking scorer at the end of the day ``t_ms``."""
        s = np.asarray(scores, dtype=float)
        y = np.asarray(labels, dtype=np.int8)
        m = ranking_metrics(s, y, (0.10,), False) if len(y) else {}
        self.points.append({"t": int(t_ms), "examples": int(examples), "scorer": scorer,
                            "window": len(y), "rocauc": _finite(m.get("rocauc")),
                            "lift_at_10": _finite(m.get("lift_at_10"))})
        del self.points[:-self.max_points]


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), 6)
