"""BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): from each
customer's repeat purchases ``x``, the time of the last one ``t_x`` and the age ``T``
(same unit, e.g. days), the probability of being alive and the expected purchases in
the next ``t``. Pure numpy/scipy; the fit is maximum likelihood on log parameters.

Purchases of an alive customer follow a Poisson process with rate lambda ~
Gamma(r, alpha); after each purchase the customer drops out with probability
p ~ Beta(a, b).

>>> m = BGNBD(r=0.243, alpha=4.414, a=0.793, b=2.426)     # the paper's CDNOW fit (weeks)
>>> round(float(expected_purchases(m, 39, 2, 30.43, 38.86)), 3)  # the authors' worked example
1.226
>>> round(float(p_alive(m, 2, 30.43, 38.86)), 4), float(p_alive(m, 0, 0.0, 38.86))
(0.7266, 1.0)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

ArrayLike = float | np.ndarray


class BGNBD(NamedTuple):
    r: float
    alpha: float
    a: float
    b: float


def _log_a4_ratio(m: BGNBD, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """log of (a / (b + x - 1)) * ((alpha + T) / (alpha + t_x))^(r + x), for x > 0."""
    xs = np.maximum(x, 1)
    return (np.log(m.a) - np.log(m.b + xs - 1)
            + (m.r + x) * (np.log(m.alpha + T) - np.log(m.alpha + t_x)))


def loglik(m: BGNBD, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
    """Per-customer log-likelihood (the paper's equation 6)."""
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    base = (gammaln(m.r + x) - gammaln(m.r) + m.r * np.log(m.alpha)
            + betaln(m.a, m.b + x) - betaln(m.a, m.b) - (m.r + x) * np.log(m.alpha + T))
    extra = np.where(x > 0, np.exp(np.minimum(_log_a4_ratio(m, x, t_x, T), 700)), 0.0)
    return base + np.log1p(extra)


START = BGNBD(1.0, 1.0, 1.0, 1.0)
# parameters stay within e^-10 .. e^10: when customers hardly ever drop out the likelihood
# keeps rising as a and b grow together, and unbounded (a, b) ~ 1e200 overflow eq. 10
LOG_BOUND = 10.0


def fit(x: ArrayLike, t_x: ArrayLike, T: ArrayLike, weights: ArrayLike | None = None,
        start: BGNBD = START) -> BGNBD:
    """Maximum likelihood; ``weights`` count identical (x, t_x, T) rows (a compressed
    population: summaries repeat a lot)."""
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)

    def nll(theta: np.ndarray) -> float:
        with np.errstate(over="ignore", invalid="ignore"):
            val = -float(np.dot(w, loglik(BGNBD(*np.exp(theta)), x, t_x, T))) / float(w.sum())
        return val if np.isfinite(val) else 1e300

    x0 = np.clip(np.log(np.array(start)), -LOG_BOUND + 1e-9, LOG_BOUND - 1e-9)
    res = minimize(nll, x0, method="Nelder-Mead", bounds=[(-LOG_BOUND, LOG_BOUND)] * 4,
                   options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 4000})
    return BGNBD(*(float(v) for v in np.exp(res.x)))


def identified(m: BGNBD) -> bool:
    """Whether a fit identified drop-out: ``a`` off its lower bound (a -> 0 puts the
    drop-out probabilities of almost everyone at 0) and a mean drop-out probability per
    purchase a / (a + b) of at least 1e-4. A young log (a few weeks of a frequent-visit
    population) gives a fit where nobody ever drops out: P(alive) is 1 for everyone to
    six decimals, and a model that learned from that near-constant meets a real fit's
    P(alive) later as a shift of thousands of standard deviations.

    >>> identified(BGNBD(0.24, 4.4, 0.79, 2.4)), identified(BGNBD(1.1, 15.0, 1e-4, 22026.5))
    (True, False)
    >>> identified(BGNBD(0.9, 14.0, math.exp(-LOG_BOUND), 0.0012))
    False
    """
    if m.a <= math.exp(-LOG_BOUND) * 1.001:
        return False
    return m.a / (m.a + m.b) >= 1e-4


def p_alive(m: BGNBD, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> np.ndarray:
    """P(alive at T | x, t_x, T); 1 for a customer with no repeat purchase."""
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    extra = np.where(x > 0, np.exp(np.minimum(_log_a4_ratio(m, x, t_x, T), 700)), 0.0)
    return 1.0 / (1.0 + extra)


def expected_purchases(m: BGNBD, t: float, x: ArrayLike, t_x: ArrayLike,
                       T: ArrayLike) -> np.ndarray:
    """E[purchases in (T, T + t] | x, t_x, T] (the paper's equation 10)."""
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    z = t / (m.alpha + T + t)
    head = (m.a + m.b + x - 1) / (m.a - 1)
    tail = 1 - ((m.alpha + T) / (m.alpha + T + t)) ** (m.r + x) * hyp2f1(
        m.r + x, m.b + x, m.a + m.b + x - 1, z)
    return np.asarray(head * tail * p_alive(m, x, t_x, T))


def p_no_purchase(m: BGNBD, t: float, x: ArrayLike, t_x: ArrayLike,
                  T: ArrayLike) -> np.ndarray:
    """P(no purchase in (T, T + t] | x, t_x, T): dead already, or alive with a gamma
    posterior rate Gamma(r + x, alpha + T) and no purchase (drop-out only follows a
    purchase)."""
    x, T = np.asarray(x, dtype=np.float64), np.asarray(T, dtype=np.float64)
    alive = p_alive(m, x, t_x, T)
    return (1 - alive) + alive * ((m.alpha + T) / (m.alpha + T + t)) ** (m.r + x)


def simulate(m: BGNBD, T: np.ndarray, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
    """(x, t_x) of customers observed for ``T`` each, drawn from the model itself."""
    n = len(T)
    lam = rng.gamma(m.r, 1.0 / m.alpha, n)
    p = rng.beta(m.a, m.b, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    for i in range(n):
        t, k = 0.0, 0
        while True:
            t += rng.exponential(1.0 / lam[i])
            if t > T[i]:
                break
            k += 1
            t_x[i] = t
            if rng.random() < p[i]:
                break
        x[i] = k
    return x, t_x
