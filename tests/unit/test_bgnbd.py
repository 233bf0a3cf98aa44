"""BG/NBD: the closed forms against an independent transcription of the paper's
formulas (math only, a series for 2F1), and parameter recovery on data drawn from
known parameters."""

from __future__ import annotations

import math

import numpy as np

from core.bgnbd import BGNBD, expected_purchases, fit, loglik, p_alive, p_no_purchase, simulate

CDNOW = BGNBD(r=0.243, alpha=4.414, a=0.793, b=2.426)  # the paper's estimates (weeks)


def hyp2f1_series(a: float, b: float, c: float, z: float) -> float:
    term, total, j = 1.0, 1.0, 0
    while abs(term) > 1e-16 * abs(total):
        term *= (a + j) * (b + j) / ((c + j) * (j + 1)) * z
        total += term
        j += 1
    return total


def by_hand(m: BGNBD, x: int, t_x: float, T: float, t: float) -> tuple[float, float, float]:
    r, al, a, b = m
    a1 = math.lgamma(r + x) + r * math.log(al) - math.lgamma(r)
    a2 = (math.lgamma(a + b) + math.lgamma(b + x) - math.lgamma(b)
          - math.lgamma(a + b + x))
    a3 = -(r + x) * math.log(al + T)
    a4 = math.log(a) - math.log(b + x - 1) - (r + x) * math.log(al + t_x) if x else None
    ll = a1 + a2 + (math.log(math.exp(a3) + math.exp(a4)) if a4 is not None else a3)
    odds = (a / (b + x - 1)) * ((al + T) / (al + t_x)) ** (r + x) if x else 0.0
    alive = 1 / (1 + odds)
    e = ((a + b + x - 1) / (a - 1) * (1 - ((al + T) / (al + T + t)) ** (r + x)
                                      * hyp2f1_series(r + x, b + x, a + b + x - 1,
                                                      t / (al + T + t))) * alive)
    return ll, alive, e


def test_closed_forms_against_the_formulas_by_hand() -> None:
    for x, t_x, T in [(0, 0.0, 38.86), (1, 5.0, 30.0), (2, 30.43, 38.86), (7, 35.0, 38.0),
                      (4, 2.0, 39.0)]:
        ll, alive, e = by_hand(CDNOW, x, t_x, T, 39.0)
        assert math.isclose(float(loglik(CDNOW, x, t_x, T)), ll, rel_tol=1e-10)
        assert math.isclose(float(p_alive(CDNOW, x, t_x, T)), alive, rel_tol=1e-12)
        assert math.isclose(float(expected_purchases(CDNOW, 39.0, x, t_x, T)), e, rel_tol=1e-9)
    # the authors' worked example (x = 2, t_x = 30.43, T = 38.86): 1.226 in 39 weeks
    assert round(float(expected_purchases(CDNOW, 39.0, 2, 30.43, 38.86)), 3) == 1.226
    # a customer who just bought is alive; one long silent after many purchases is not
    assert float(p_alive(CDNOW, 5, 38.86, 38.86)) > 0.85 > 0.2 > float(p_alive(CDNOW, 5, 5, 38.86))


def test_no_purchase_probability_matches_monte_carlo() -> None:
    """Whole purchase paths to T + t drawn from the model: among customers with k repeat
    purchases by T, the share with none in (T, T + t] matches the mean predicted
    P(no purchase)."""
    rng = np.random.default_rng(3)
    m, T, t, n = BGNBD(2.0, 10.0, 1.5, 3.0), 30.0, 20.0, 40_000
    lam, p = rng.gamma(m.r, 1 / m.alpha, n), rng.beta(m.a, m.b, n)
    x_T, t_x_T, later = np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool)
    for i in range(n):
        s = 0.0
        while True:
            s += rng.exponential(1 / lam[i])
            if s > T + t:
                break
            if s > T:
                later[i] = True
                break
            x_T[i], t_x_T[i] = x_T[i] + 1, s
            if rng.random() < p[i]:
                break
    for k in (0, 1, 3):
        sel = x_T == k
        want = float(np.mean(p_no_purchase(m, t, x_T[sel], t_x_T[sel], np.full(sel.sum(), T))))
        got = 1 - float(np.mean(later[sel]))
        assert abs(want - got) < 0.02, (k, want, got)


def test_parameter_recovery() -> None:
    rng = np.random.default_rng(11)
    truth = BGNBD(r=0.8, alpha=6.0, a=0.9, b=2.5)
    T = rng.uniform(20, 60, 20_000)
    x, t_x = simulate(truth, T, rng)
    got = fit(x, t_x, T)
    for name, want in truth._asdict().items():
        assert abs(getattr(got, name) / want - 1) < 0.2, (name, got)
