"""RFM scores and personas: vector and scalar agree, cut points are quintiles."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from core import segments
from core.segments import GRID, PERSONAS, RFMCuts, fit_cuts, persona, score_arrays, scores

values = st.lists(st.integers(0, 60), min_size=5, max_size=200)


@settings(max_examples=100, deadline=None)
@given(values, values, st.lists(st.floats(0, 500, allow_nan=False), min_size=5, max_size=200))
def test_vector_scores_equal_scalar_and_quintiles(r: list[int], f: list[int],
                                                  m: list[float]) -> None:
    k = min(len(r), len(f), len(m))
    rr, ff, mm = np.array(r[:k], float), np.array(f[:k], float), np.array(m[:k])
    cuts = fit_cuts(rr, ff, mm)
    assert cuts.frequency == tuple(float(v) for v in np.quantile(ff, [0.2, 0.4, 0.6, 0.8]))
    vr, vf, vm = score_arrays(cuts, rr, ff, mm)
    for i in range(k):
        assert scores(cuts, rr[i], ff[i], mm[i]) == (vr[i], vf[i], vm[i])
    # recency: lower is better; frequency and monetary: higher is better
    assert all(1 <= s <= 5 for s in (*vr, *vf, *vm))
    order = np.argsort(rr, kind="stable")
    assert np.all(np.diff(vr[order]) <= 0)
    order = np.argsort(ff, kind="stable")
    assert np.all(np.diff(vf[order]) >= 0)
    counts = segments.counts(cuts, rr, ff, mm, prospects=3)
    assert sum(counts.values()) == k + 3 and counts["prospect"] == 3


def test_every_cell_has_a_persona_and_the_grid_reads_as_documented() -> None:
    assert {persona(r, f) for r in range(1, 6) for f in range(1, 6)} == set(PERSONAS)
    assert GRID.shape == (5, 5)
    assert [persona(5, f) for f in range(1, 6)] == ["new", "potential_loyalist",
                                                     "potential_loyalist", "champions",
                                                     "champions"]
    assert [persona(1, f) for f in range(1, 6)] == ["hibernating", "hibernating", "at_risk",
                                                     "at_risk", "cant_lose"]


def test_ties_share_a_score() -> None:
    cuts = RFMCuts((1.0, 2.0, 3.0, 4.0), (1.0, 1.0, 1.0, 2.0), (1.0, 2.0, 3.0, 4.0))
    assert scores(cuts, 0, 1, 0)[1] == 1  # most bought once: F = 1 for all of them
    assert scores(cuts, 0, 2, 0)[1] == 4 and scores(cuts, 0, 3, 0)[1] == 5
