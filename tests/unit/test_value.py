"""Gamma-Gamma and per-user value, against independent numerical routes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from core import bgnbd, gammagamma
from core.bgnbd import BGNBD
from core.gammagamma import GammaGamma
from core.value import ValueInputs, ValueParams, user_value, value_arrays

G = GammaGamma(p=6.25, q=3.74, gamma=15.44)


def _density_by_integration(g: GammaGamma, n: int, m: float) -> float:
    """Density of the mean of n values: integrate the conditional Gamma over nu."""
    def inner(nu: float) -> float:
        # the sum of n Gamma(p, nu) is Gamma(pn, nu); the mean's density is n f_sum(n m)
        return (n * stats.gamma.pdf(n * m, a=g.p * n, scale=1 / nu)
                * stats.gamma.pdf(nu, a=g.q, scale=1 / g.gamma))
    return integrate.quad(inner, 0, np.inf, limit=200)[0]


@pytest.mark.parametrize(("n", "m"), [(1, 10.0), (2, 30.0), (5, 4.5), (12, 80.0)])
def test_loglik_equals_integrated_density(n: int, m: float) -> None:
    want = math.log(_density_by_integration(G, n, m))
    assert float(gammagamma.loglik(G, n, m)) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize(("n", "m"), [(1, 10.0), (3, 30.0), (8, 55.0)])
def test_expected_spend_equals_posterior_mean(n: int, m: float) -> None:
    """E[p / nu | data] by integrating over the posterior of nu."""
    def post(nu: float) -> float:
        return (stats.gamma.pdf(n * m, a=G.p * n, scale=1 / nu)
                * stats.gamma.pdf(nu, a=G.q, scale=1 / G.gamma))
    z = integrate.quad(post, 0, np.inf, limit=200)[0]
    mean = integrate.quad(lambda nu: G.p / nu * post(nu), 0, np.inf, limit=200)[0] / z
    assert float(gammagamma.expected_spend(G, n, m)) == pytest.approx(mean, rel=1e-6)


def test_fit_recovers_parameters() -> None:
    rng = np.random.default_rng(7)
    true = GammaGamma(p=4.0, q=5.0, gamma=60.0)
    n = rng.integers(1, 12, size=20_000).astype(float)
    m = gammagamma.simulate(true, n, rng)
    got = gammagamma.fit(n, m)
    for g, t in zip(got, true, strict=True):
        assert abs(g - t) / t < 0.15, (got, true)
    assert got.population_mean == pytest.approx(true.population_mean, rel=0.05)


def test_fit_skips_unvalued_customers_and_refuses_none() -> None:
    rng = np.random.default_rng(1)
    n = np.full(3000, 3.0)
    m = gammagamma.simulate(G, n, rng)
    base = gammagamma.fit(n, m)
    assert gammagamma.fit(np.r_[n, 0, 2], np.r_[m, 0.0, 0.0]) == base
    with pytest.raises(ValueError):
        gammagamma.fit([0, 1], [5.0, 0.0])


PARAMS = ValueParams(1, BGNBD(0.243, 4.414, 0.793, 2.426), G)


def test_clv_is_the_discounted_sum_of_period_purchases() -> None:
    """A hand loop over 30-day periods, written from the lifetimes formula."""
    v = ValueInputs(x=4, t_x=50, T=80, n=5, spend=150.0)
    got = user_value(PARAMS, v, horizon_days=30, clv_days=365, discount=0.02)
    per = (G.gamma + 150.0) * G.p / (G.p * 5 + G.q - 1)
    total = 0.0
    for k in range(1, 13):
        step = (bgnbd.expected_purchases(PARAMS.bgnbd, 30 * k, 4, 50, 80)
                - bgnbd.expected_purchases(PARAMS.bgnbd, 30 * (k - 1), 4, 50, 80))
        total += float(step) * per / 1.02 ** k
    assert got.clv == pytest.approx(total, rel=1e-12)
    assert got.value_per_purchase == pytest.approx(per, rel=1e-12)
    assert got.expected_purchases == pytest.approx(
        float(bgnbd.expected_purchases(PARAMS.bgnbd, 30, 4, 50, 80)), rel=1e-12)
    assert 0 < got.p_no_purchase < 1 and 0 < got.p_alive <= 1


def test_vector_and_scalar_agree_and_value_orders_sensibly() -> None:
    xs = np.array([0, 1, 5, 5, 20], float)
    t_x = np.array([0, 10, 40, 10, 88], float)
    T = np.full(5, 90.0)
    n = xs + 1
    spend = n * 40.0
    a = value_arrays(PARAMS, xs, t_x, T, n, spend, 30, 360, 0.01)
    for i in range(5):
        one = user_value(PARAMS, ValueInputs(int(xs[i]), int(t_x[i]), 90, int(n[i]),
                                             float(spend[i])), 30, 360, 0.01)
        assert one.clv == pytest.approx(float(a.clv[i]), rel=1e-12)
    # recent frequent buyers are worth more than the same frequency long silent
    assert a.clv[2] > a.clv[3] and a.p_alive[2] > a.p_alive[3]
    assert a.clv[4] == a.clv.max()
