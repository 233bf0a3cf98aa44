"""Customer value and RFM segment of one user, for ``GET /v1/users/{id}`` and ``/v1/top``.

The current fit (BG/NBD, Gamma-Gamma, RFM cut points) is read from Redis at most every
two seconds; the user's summary comes from the state the route already read. A score's
reasons name its BG/NBD inputs under the fit that served it (its day's, on the schedule).
"""

from __future__ import annotations

import time
from typing import Any

from core import segments
from core.bgnbd import BGNBD
from core.features import DAY_MS, Aggregates
from core.model import REASON_NAMES, VALUE_INPUT_NAMES
from core.settings import Settings
from core.value import ValueInputs, bgnbd_inputs, summary_arrays, user_value, value_inputs
from state.value_model import ValueModel
from state.value_store import RowInfo, ValueFit, ValueStore


class FitCache:
    """The newest fit (value, CLV, segments), and the BG/NBD fit that served a score on
    its day, as the workers chose it (``state.value_model``), for its reasons."""

    def __init__(self, store: ValueStore, ttl: float = 2.0, every_days: int = 0,
                 lag_days: int = 7, horizon_days: int = 30) -> None:
        self.store, self.ttl = store, ttl
        self._fit: ValueFit | None = None
        self._read_at = -1e9
        self.serving = ValueModel(store, horizon_days, every_days=every_days,
                                  lag_days=lag_days)

    async def get(self) -> ValueFit | None:
        if time.monotonic() - self._read_at > self.ttl:
            self._fit = await self.store.current()
            await self.serving.restore()
            self._read_at = time.monotonic()
        return self._fit

    async def bgnbd_at(self, day: int) -> BGNBD | None:
        """The BG/NBD fit serving on UTC day ``day`` (the newest without the schedule)."""
        fit = await self.get()
        if self.serving.scheduled:
            return self.serving.serving(day)
        return fit.params.bgnbd if fit is not None else None


PROSPECT = {"name": segments.PROSPECT, "r": None, "f": None, "m": None}


def segment_of(fit: ValueFit, days: set[int], mean_spend: float, now_ms: int
               ) -> dict[str, Any]:
    """Persona and R/F/M scores at ``now_ms`` of a user with these purchase days."""
    if not days:
        return PROSPECT
    today = now_ms // DAY_MS
    w = fit.frequency_days
    freq = len(days) if w == 0 else sum(1 for d in days if today - w < d <= today)
    r, f, m = segments.scores(fit.cuts, today - max(days), freq, mean_spend)
    return {"name": segments.persona(r, f), "r": r, "f": f, "m": m}


def segment_of_row(fit: ValueFit, row: RowInfo) -> dict[str, Any]:
    """:func:`segment_of` of a value-page row, at its reference time."""
    if row.purchase_days is None or row.as_of_ms is None:
        return PROSPECT
    return segment_of(fit, row.purchase_days, row.mean_spend, row.as_of_ms)


def value_of(fit: ValueFit | None, agg: Aggregates, settings: Settings
             ) -> tuple[dict[str, Any] | None, ValueInputs | None]:
    """The ``value`` block (None before the first purchase) and the user's summary."""
    v = value_inputs(agg)
    if v is None:
        return None, None
    out: dict[str, Any] = {
        "purchase_days": v.x + 1, "repeat_purchase_days": v.x, "t_x_days": v.t_x,
        "age_days": v.T, "valued_purchase_days": v.n, "mean_spend": v.mean_spend,
        "fit_version": None, "p_alive": None, "expected_purchases": None,
        "p_no_purchase": None, "value_per_purchase": None, "clv": None,
        "horizon_days": settings.churn_horizon_days, "clv_days": settings.value_clv_days}
    if fit is not None:
        uv = user_value(fit.params, v, settings.churn_horizon_days, settings.value_clv_days,
                        settings.value_discount)
        out.update(uv._asdict(), fit_version=fit.params.version)
    return out, v


def with_value_inputs(feats: dict[str, float], reasons: tuple[tuple[int, float], ...],
                      bg: BGNBD | None, agg: Aggregates, horizon_days: int
                      ) -> dict[str, float]:
    """The features plus the user's BG/NBD inputs under ``bg`` (the fit that served the
    score), when a stored reason names one of them (a model with the value inputs
    scored it)."""
    if not any(REASON_NAMES[i] in VALUE_INPUT_NAMES for i, _ in reasons):
        return feats
    row = bgnbd_inputs(bg, horizon_days, *summary_arrays([agg]))[0]
    return {**feats, **dict(zip(VALUE_INPUT_NAMES, row.tolist(), strict=True))}
