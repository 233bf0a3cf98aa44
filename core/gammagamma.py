"""Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV: using iso-value
curves"; Fader & Hardie's note "The Gamma-Gamma model of monetary value").

A customer's transaction values are Gamma(p, nu) around a personal mean p/nu, with
nu ~ Gamma(q, gamma) across customers. From the number ``n`` of a customer's valued
transactions and their mean ``m``, the expected value of the next one is a weighted
average of the population mean and the customer's own mean. Pure numpy/scipy; the fit
is maximum likelihood on log parameters, like :mod:`core.bgnbd`.

>>> g = GammaGamma(p=6.25, q=3.74, gamma=15.44)  # the note's CDNOW estimates
>>> round(g.population_mean, 2)                     # p * gamma / (q - 1)
35.22
>>> round(float(expected_spend(g, 2, 30.0)), 2)     # 2 purchases averaging $30
30.94
>>> float(expected_spend(g, 0, 0.0)) == g.population_mean  # no purchase yet: the mean
True
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln

ArrayLike = float | np.ndarray


class GammaGamma(NamedTuple):
    p: float
    q: float
    gamma: float

    @property
    def population_mean(self) -> float:
        """Mean transaction value across customers (infinite when q <= 1)."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else float("inf")


def loglik(g: GammaGamma, n: ArrayLike, m: ArrayLike) -> np.ndarray:
    """Log density of a mean ``m`` > 0 of ``n`` >= 1 transaction values, per customer."""
    n, m = np.asarray(n, float), np.asarray(m, float)
    p, q, gamma = g
    px = p * n
    return (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(gamma)
            + (px - 1) * np.log(m) + px * np.log(n) - (px + q) * np.log(gamma + n * m))


_START = GammaGamma(1.0, 2.0, 1.0)  # gamma is scaled by the data's mean


def fit(n: ArrayLike, m: ArrayLike, weights: ArrayLike | None = None,
        start: GammaGamma = _START) -> GammaGamma:
    """Maximum-likelihood (p, q, gamma) from customers with ``n`` >= 1 and ``m`` > 0."""
    n, m = np.asarray(n, float), np.asarray(m, float)
    keep = (n >= 1) & (m > 0)
    if not keep.any():
        raise ValueError("no customer with a positive mean spend")
    n, m = n[keep], m[keep]
    w = np.ones_like(n) if weights is None else np.asarray(weights, float)[keep]
    # start gamma on the data's scale: log-parameter steps are then of similar size
    scale = float(np.average(m, weights=w))
    x0 = np.log([start.p, start.q, start.gamma * scale])

    total = float(w.sum())

    def nll(theta: np.ndarray) -> float:  # the mean, so that fatol means the same at any size
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            val = -float(np.dot(w, loglik(GammaGamma(*np.exp(theta)), n, m))) / total
        return val if np.isfinite(val) else 1e300

    res = minimize(nll, x0, method="Nelder-Mead", bounds=[(-15.0, 15.0)] * 3,
                   options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 4000})
    return GammaGamma(*(float(v) for v in np.exp(res.x)))


def expected_spend(g: GammaGamma, n: ArrayLike, m: ArrayLike) -> np.ndarray:
    """E[value of the next transaction | n valued transactions with mean m]."""
    n, m = np.asarray(n, float), np.asarray(m, float)
    p, q, gamma = g
    return (gamma + n * m) * p / (p * n + q - 1)


def simulate(g: GammaGamma, n: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mean of ``n[i]`` transaction values per customer drawn from the model."""
    nu = rng.gamma(g.q, 1 / g.gamma, size=len(n))
    return rng.gamma(g.p * n, 1 / nu) / n  # a sum of n Gamma(p, nu) values is Gamma(pn, nu)
