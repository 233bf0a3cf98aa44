"""RFM segments: quintile scores 1-5 and named personas (pure).

Recency = days since the last purchase day (lower is better), frequency = purchase days
in the configurable window (``CHURN_RFM_FREQUENCY_DAYS``; 0 = lifetime), monetary =
mean spend per purchase day with known spend. The cut points are the population's 20/40/
60/80 % quantiles among customers, refreshed by the value fit; a score is 1 + the
number of cut points strictly below the value (5 - that for recency), so ties share a
score and a population where most customers bought once gives them F = 1.

Personas follow the widely used recency x frequency grid; users without a purchase are
``prospect``.

>>> cuts = RFMCuts((2, 7, 20, 45), (1, 1, 2, 4), (10, 20, 35, 60))
>>> scores(cuts, recency=1, frequency=6, monetary=80.0)
(5, 5, 5)
>>> persona(5, 5), persona(1, 1), persona(2, 4), persona(5, 1), persona(3, 3)
('champions', 'hibernating', 'at_risk', 'new', 'need_attention')
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

PERSONAS = ("champions", "loyal", "potential_loyalist", "new", "promising", "need_attention",
            "about_to_sleep", "at_risk", "cant_lose", "hibernating")
PROSPECT = "prospect"
SEGMENTS = (*PERSONAS, PROSPECT)
QUANTILES = (0.2, 0.4, 0.6, 0.8)


class RFMCuts(NamedTuple):
    recency: tuple[float, ...]
    frequency: tuple[float, ...]
    monetary: tuple[float, ...]


def fit_cuts(recency: np.ndarray, frequency: np.ndarray, monetary: np.ndarray) -> RFMCuts:
    """Quintile cut points of a population of customers."""
    def q(a: np.ndarray) -> tuple[float, ...]:
        return tuple(float(v) for v in np.quantile(a, QUANTILES)) if len(a) else (0.0,) * 4
    return RFMCuts(q(recency), q(frequency), q(monetary))


def _grid() -> np.ndarray:
    """GRID[r - 1, f - 1] = index into PERSONAS."""
    g = np.empty((5, 5), dtype=np.int8)
    for r in range(1, 6):
        for f in range(1, 6):
            if r <= 2:
                name = "hibernating" if f <= 2 else "at_risk" if f <= 4 else "cant_lose"
            elif r == 3:
                name = "about_to_sleep" if f <= 2 else "need_attention" if f == 3 else "loyal"
            elif f >= 4:
                name = "champions" if r == 5 else "loyal"
            elif f == 1:
                name = "new" if r == 5 else "promising"
            else:
                name = "potential_loyalist"
            g[r - 1, f - 1] = PERSONAS.index(name)
    return g


GRID = _grid()


def persona(r: int, f: int) -> str:
    return PERSONAS[GRID[r - 1, f - 1]]


def scores(cuts: RFMCuts, recency: float, frequency: float, monetary: float
           ) -> tuple[int, int, int]:
    """(R, F, M) scores of one customer."""
    return (5 - sum(c < recency for c in cuts.recency),
            1 + sum(c < frequency for c in cuts.frequency),
            1 + sum(c < monetary for c in cuts.monetary))


def score_arrays(cuts: RFMCuts, recency: np.ndarray, frequency: np.ndarray,
                 monetary: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`scores` for many customers."""
    def above(c: tuple[float, ...], a: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(c), a, side="left")
    return 5 - above(cuts.recency, recency), 1 + above(cuts.frequency, frequency), \
        1 + above(cuts.monetary, monetary)


def persona_index(cuts: RFMCuts, recency: np.ndarray, frequency: np.ndarray,
                  monetary: np.ndarray) -> np.ndarray:
    """Each customer's persona, as an index into PERSONAS."""
    r, f, _ = score_arrays(cuts, recency, frequency, monetary)
    return GRID[r - 1, f - 1].astype(np.int64)


def counts(cuts: RFMCuts, recency: np.ndarray, frequency: np.ndarray, monetary: np.ndarray,
           prospects: int = 0) -> dict[str, int]:
    """Customers per persona (every segment listed, zeros included)."""
    per = np.bincount(persona_index(cuts, recency, frequency, monetary),
                      minlength=len(PERSONAS))
    return {**{name: int(n) for name, n in zip(PERSONAS, per, strict=True)}, PROSPECT: prospects}
