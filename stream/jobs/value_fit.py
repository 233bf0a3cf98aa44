"""The customer-value fit: summaries from Redis -> BG/NBD + Gamma-Gamma + RFM cut points
-> a new version in Redis and a rebuilt value index (CLV per customer).

Run by the learner on the event-time schedule (:func:`scheduled_fits`: every fit day's
summaries, as the partitions' anchors stored them; core/value_schedule.py) and by
``churnstream fit-value`` (every customer now, each at its partition's watermark).
The BG/NBD fit sees each distinct (x, t_x, T) once with its count as weight (whole days
repeat a lot: 1M summaries of a 180-day log have about 150k distinct rows; bench/).
Gamma-Gamma uses at most GG_SAMPLE customers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from core import bgnbd, gammagamma, segments
from core.features import DAY_MS
from core.settings import Settings
from core.value import ValueParams, discounted_purchases
from core.value_at_risk import at_risk_book, tier_index
from state.redis_store import keys_for
from state.value_rows import ValueRows
from state.value_store import Summaries, ValueFit, ValueStore

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
    mean = mean_spend(s)
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


async def run_fit(store: ValueStore, settings: Settings, summaries: Summaries | None = None
                  ) -> ValueFit | None:
    """One fit over ``summaries`` (default: the current population); None (and the old
    fit kept) when there are fewer than ``CHURN_VALUE_MIN_CUSTOMERS`` customers."""
    if summaries is None:
        summaries = await store.summaries(settings.rfm_frequency_days)
    ids, s, as_of, prospects, retired = summaries
    if len(s) < settings.value_min_customers:
        log.info("value fit skipped: %d customers (< %d)", len(s), settings.value_min_customers)
        return None
    # in a thread: the learner's event loop keeps learning while numpy and scipy work
    fit, clv = await asyncio.to_thread(fit_summaries, s, as_of, settings, await store.current(),
                                       retired)
    fit.segments[segments.PROSPECT] = prospects
    fit = fit._replace(book=await value_at_risk(store, settings, fit, ids, s, clv))
    version = await store.save(fit)
    await store.write_index(ids, clv)
    log.info("value fit %d: %d customers, %s, %s", version, len(s), fit.params.bgnbd,
             fit.params.gg)
    return fit._replace(params=fit.params._replace(version=version))


async def value_at_risk(store: ValueStore, settings: Settings, fit: ValueFit, ids: list[str],
                        s: np.ndarray, clv: np.ndarray) -> dict[str, Any]:
    """Value at risk per persona and tier (core.value_at_risk): the fit's personas and
    CLVs with the risks and tier edges of the ranking now (read one after the other,
    not as one transaction: a live ranking may move a few users in between)."""
    policy = settings.tier_policy()
    edges = [] if policy.absolute else await store.tier_edges(policy.cuts)
    risk = await store.risks(ids)
    persona = segments.persona_index(fit.cuts, s["recency"], s["frequency"], mean_spend(s))
    tier = tier_index(risk, ids, edges, policy.cuts if policy.absolute else None)
    return at_risk_book(persona, risk, clv, tier)


def mean_spend(s: np.ndarray) -> np.ndarray:
    """Mean spend per valued purchase day of SUMMARY records (0 without one)."""
    n = s["n"].astype(np.float64)
    return np.divide(s["spend"], n, out=np.zeros_like(n), where=n > 0)


def describe(fit: ValueFit) -> dict[str, Any]:
    """A JSON-ready summary (CLI output, logs)."""
    p = fit.params
    return {"version": p.version, "customers": p.customers, "retired": p.retired,
            "valued": p.valued,
            "seconds": p.seconds, "as_of_day": fit.as_of_ms // DAY_MS,
            "bgnbd": p.bgnbd._asdict(), "gamma_gamma": p.gg._asdict(),
            "segments": fit.segments}


async def fit_due(store: ValueStore, rows: ValueRows, settings: Settings,
                  on_fit: Callable[[str, ValueFit | None, float], None] | None = None
                  ) -> int:
    """Fit every due fit day, oldest first, whose rows every expected partition has
    delivered (or, after ``CHURN_VALUE_FIT_PARTIAL_SECONDS``, those that did: outcome
    ``partial``); stops at the first day still waiting, unless a later day is complete:
    then the waiting day can no longer serve before it and is given up (``superseded``,
    recorded as skipped). Returns the days done."""
    done = 0
    due = await rows.due()
    missing_of = {day: await rows.missing(day) for day, _ in due}
    for k, (day, first_ms) in enumerate(due):
        missing = missing_of[day]
        waited = time.time() * 1000 - first_ms
        if missing and waited < settings.value_fit_partial_seconds * 1000:
            if not any(not missing_of[d] for d, _ in due[k + 1:]):
                break
            log.warning("value fit of day %d given up: partitions %s never delivered and "
                        "a later day is complete", day, sorted(missing))
            await rows.finish(day, 0, store.keep)
            if on_fit is not None:
                on_fit("superseded", None, 0.0)
            done += 1
            continue
        if missing:
            log.warning("value fit of day %d without partitions %s (not there after %.0f s)",
                        day, sorted(missing), waited / 1000)
        t0 = time.perf_counter()
        ids, recs, prospects = await rows.read(day)
        retired = await store.retired(day)
        fit = await run_fit(store, settings, Summaries(ids, recs, day * DAY_MS, prospects,
                                                       retired))
        # every fit serves; one that identified no drop-out (bgnbd.identified) serves
        # as the NBD model, P(alive) exactly 1 (core.value.bgnbd_inputs)
        version = 0 if fit is None else fit.params.version
        await rows.finish(day, version, store.keep, fit.params.bgnbd if fit is not None else None)
        if on_fit is not None:
            outcome = ("skipped" if fit is None else "partial" if missing
                       else "fitted" if bgnbd.identified(fit.params.bgnbd) else "unidentified")
            on_fit(outcome, fit, time.perf_counter() - t0)
        done += 1
    return done


async def scheduled_fits(settings: Settings, client: Any, stop: asyncio.Event,
                         on_fit: Callable[[str, ValueFit | None, float], None] | None = None,
                         poll_seconds: float = 0.2) -> None:
    """The learner's value job: beat, fit what is due, until ``stop``. A failed fit is
    logged and reported (``failed``); its rows stay and are tried again."""
    keys = keys_for(client, settings.redis_prefix, settings.partitions)
    store, rows = ValueStore(client, keys=keys), ValueRows(client, keys=keys)
    # the heartbeat has a task of its own: a fit that takes longer than the beat's TTL
    # (many customers, a loaded machine) is not "no learner" to a worker waiting for it
    beating = asyncio.ensure_future(_beat(rows, stop))
    try:
        await _fit_loop(settings, store, rows, stop, on_fit, poll_seconds)
    finally:
        beating.cancel()


async def _beat(rows: ValueRows, stop: asyncio.Event, every: float = 1.0) -> None:
    while not stop.is_set():
        try:
            await rows.beat()
        except Exception as exc:  # Redis away: the fit loop reports it
            log.debug("value job heartbeat failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def _fit_loop(settings: Settings, store: ValueStore, rows: ValueRows,
                    stop: asyncio.Event,
                    on_fit: Callable[[str, ValueFit | None, float], None] | None,
                    poll_seconds: float) -> None:
    failures = 0
    while not stop.is_set():
        try:
            await fit_due(store, rows, settings, on_fit)
            failures = 0
        except Exception:
            log.exception("value fit failed")
            failures += 1
            if on_fit is not None:
                on_fit("failed", None, 0.0)
            if failures >= 3:  # not transient: give the oldest day up, go on with the rest
                with contextlib.suppress(Exception):
                    due = await rows.due()
                    if due:
                        log.error("value fit of day %d given up after %d failures",
                                  due[0][0], failures)
                        await rows.finish(due[0][0], 0, store.keep)
                failures = 0
            await asyncio.sleep(5 * poll_seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll_seconds)
