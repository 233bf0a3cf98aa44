"""The customer-value fit: summaries from Redis -> BG/NBD + Gamma-Gamma + RFM cut points
-> a new version in Redis and a rebuilt value index (CLV per customer).

Run by the learner every ``CHURN_VALUE_FIT_SECONDS`` and by ``churnstream fit-value``.
The BG/NBD fit sees each distinct (x, t_x, T) once with its count as weight (whole days
repeat a lot: 1M summaries of a 180-day log have about 150k distinct rows; bench/).
Gamma-Gamma uses at most GG_SAMPLE customers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np

from core import bgnbd, gammagamma, segments
from core.features import DAY_MS
from core.settings import Settings
from core.value import ValueParams, discounted_purchases
from state.value_store import ValueFit, ValueStore

log = logging.getLogger(__name__)
# Gamma-Gamma has no compressible summary (log(gamma + n m) mixes the parameter with each
# customer's spend), so above this many valued customers it is fit on a fixed random
# subsample: at 1M customers the full fit took 12.9 s, 200k took 2.6 s and landed within
# 0.25 % of it (bench/bgnbd_fit.py, 2026-11-22)
GG_SAMPLE = 200_000


def fit_summaries(s: np.ndarray, as_of_ms: int, settings: Settings,
                  previous: ValueFit | None = None, retired: np.ndarray | None = None
                  ) -> tuple[ValueFit, np.ndarray]:
    """Fit on SUMMARY records; returns the fit and each customer's CLV (same order).
    ``retired``: rows (x, t_x, T, customers) of deleted customers, which BG/NBD must
    still see (without them the dead would vanish from the population it fits)."""
    t0 = time.perf_counter()
    rows = np.stack([s["x"], s["t_x"], s["T"]], axis=1).astype(np.float64)
    uniq, inverse, weight = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    x, t_x, T = uniq.T
    start = previous.params.bgnbd if previous is not None else bgnbd.BGNBD(1.0, 1.0, 1.0, 1.0)
    gone = retired if retired is not None else np.zeros((0, 4), np.int64)
    fit_rows = np.concatenate([uniq, gone[:, :3].astype(np.float64)])
    fit_weight = np.concatenate([weight, gone[:, 3]]).astype(np.float64)
    bg = bgnbd.fit(fit_rows[:, 0], fit_rows[:, 1], fit_rows[:, 2], weights=fit_weight,
                   start=start)
    n = s["n"].astype(np.float64)
    mean = np.divide(s["spend"], n, out=np.zeros_like(n), where=n > 0)
    valued = np.flatnonzero((n >= 1) & (mean > 0))
    if len(valued) > GG_SAMPLE:  # a fixed random subsample: the estimates barely move
        valued = np.sort(np.random.default_rng(0).choice(valued, GG_SAMPLE, replace=False))
    gg = gammagamma.fit(n[valued], mean[valued])
    # CLV = spend per purchase day x discounted purchases per 30-day period: the latter
    # depends on (x, t_x, T) only, so it is computed once per distinct row
    per_row = discounted_purchases(bg, x, t_x, T, settings.value_clv_days,
                                   settings.value_discount)
    clv = per_row[inverse] * gammagamma.expected_spend(gg, n, mean)
    cuts = segments.fit_cuts(s["recency"].astype(float), s["frequency"].astype(float), mean)
    counts = segments.counts(cuts, s["recency"], s["frequency"], mean)
    params = ValueParams(0, bg, gg, as_of_ms, len(s), int(((n >= 1) & (mean > 0)).sum()),
                         round(time.perf_counter() - t0, 3), int(gone[:, 3].sum()))
    return ValueFit(params, cuts, counts, as_of_ms, settings.rfm_frequency_days), clv


async def run_fit(store: ValueStore, settings: Settings) -> ValueFit | None:
    """One fit over the current population; None (and the old fit kept) when there are
    fewer than ``CHURN_VALUE_MIN_CUSTOMERS`` customers."""
    ids, s, as_of, prospects, retired = await store.summaries(settings.rfm_frequency_days)
    if len(s) < settings.value_min_customers:
        log.info("value fit skipped: %d customers (< %d)", len(s), settings.value_min_customers)
        return None
    # in a thread: the learner's event loop keeps learning while numpy and scipy work
    fit, clv = await asyncio.to_thread(fit_summaries, s, as_of, settings, await store.current(),
                                       retired)
    fit.segments[segments.PROSPECT] = prospects
    version = await store.save(fit)
    await store.write_index(ids, clv)
    log.info("value fit %d: %d customers, %s, %s", version, len(s), fit.params.bgnbd,
             fit.params.gg)
    return fit._replace(params=fit.params._replace(version=version))


def describe(fit: ValueFit) -> dict[str, Any]:
    """A JSON-ready summary (CLI output, logs)."""
    p = fit.params
    return {"version": p.version, "customers": p.customers, "retired": p.retired,
            "valued": p.valued,
            "seconds": p.seconds, "as_of_day": fit.as_of_ms // DAY_MS,
            "bgnbd": p.bgnbd._asdict(), "gamma_gamma": p.gg._asdict(),
            "segments": fit.segments}
