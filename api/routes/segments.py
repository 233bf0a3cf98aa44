"""``GET /v1/segments``: customers per RFM persona at the last value fit, the fit, and
each persona's mean risk and value at risk then (core/value_at_risk.py)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.deps import FitsDep

router = APIRouter(prefix="/v1", tags=["value"])


class SegmentValue(BaseModel):
    customers: int
    scored: int
    mean_risk: float | None
    value_at_risk: float
    clv: float


class Segments(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "fit_version": 4, "as_of": 1580342400000, "customers": 61234,
        "segments": {"champions": 5210, "hibernating": 14022, "prospect": 38766},
        "cuts": {"recency": [3, 11, 27, 58], "frequency": [1, 1, 2, 4],
                 "monetary": [12.1, 25.0, 41.7, 80.2]},
        "frequency_days": 365, "bgnbd": {"r": 0.21, "alpha": 6.3, "a": 0.6, "b": 2.1},
        "gamma_gamma": {"p": 3.1, "q": 4.2, "gamma": 40.5},
        "value_at_risk": {"champions": {"customers": 5210, "scored": 5190, "mean_risk": 0.08,
                                        "value_at_risk": 20411.5, "clv": 255140.2}}}]})

    fit_version: int | None = Field(description="None before the first value fit")
    as_of: int | None = Field(description="Event time (ms) the summaries were taken at")
    customers: int = Field(description="Users with at least one purchase")
    segments: dict[str, int] = Field(description="Users per persona (prospect: no purchase)")
    cuts: dict[str, list[float]] = Field(description="Quintile cut points of R, F and M")
    frequency_days: int | None
    bgnbd: dict[str, float] | None
    gamma_gamma: dict[str, float] | None
    value_at_risk: dict[str, SegmentValue] | None = Field(
        None, description="Per persona when the fit ran: customers, those scored (ranked), "
                          "their mean risk, the sum of risk x CLV and of CLV (null in fits "
                          "from before it)")


@router.get("/segments", response_model=Segments)
async def get_segments(fits: FitsDep) -> Segments:
    fit = await fits.get()
    if fit is None:
        return Segments(fit_version=None, as_of=None, customers=0, segments={}, cuts={},
                        frequency_days=None, bgnbd=None, gamma_gamma=None,
                        value_at_risk=None)
    p = fit.params
    return Segments(fit_version=p.version, as_of=fit.as_of_ms, customers=p.customers,
                    segments=fit.segments,
                    cuts={k: list(v) for k, v in fit.cuts._asdict().items()},
                    frequency_days=fit.frequency_days, bgnbd=p.bgnbd._asdict(),
                    gamma_gamma=p.gg._asdict(),
                    value_at_risk=fit.book["segments"] if fit.book is not None else None)
