"""``GET /v1/top`` and ``GET /v1/tiers``: the ranking of scored users, riskiest first.

Rank r (1 = riskiest) of N ranked users has percentile 100 (N - r + 1) / N and
is in tier ``critical`` when (r - 1) / N < 5 %, ``high`` < 15 %, ``elevated``
< 30 %, else ``low`` (cuts: ``CHURN_TIER_CUTS``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import SettingsDep, StoreDep, fits_of, policy_of
from api.errors import responses
from api.responses import FastJSON, guarded
from api.targeting import (
    MAX_OFFSET,
    MAX_PAGE,
    SEGMENT_PATTERN,
    TopQuery,
    risk_items,
    value_items,
    window,
)
from api.tier_bounds import bounds
from api.value_rank import Sort
from core.tiers import CHURNED, TIERS, TierPolicy, rank_position

router = APIRouter(prefix="/v1", tags=["ranking"])


class Ranked(BaseModel):
    user_id: str
    rank: int
    risk: float
    percentile: float
    tier: str
    clv: float | None = Field(None, description="CLV at the last value fit (value queries)")
    expected_saved_value: float | None = Field(None, description="risk x clv")
    segment: str | None = Field(None, description="RFM persona now (value queries)")


class TopPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "ranked": 641, "offset": 0, "items": [
            {"user_id": "u0000665", "rank": 1, "risk": 0.81, "percentile": 100.0,
             "tier": "critical"}]}]})

    ranked: int
    offset: int
    items: list[Ranked]
    sort: str = "risk"
    min_clv: float | None = Field(None, description="CLV threshold of min_value_quantile")
    value_fit_version: int | None = None
    max_depth: int | None = Field(None, description="Value queries: rows read at most "
                                                    "(offset + k)")
    truncated: bool = Field(False, description="Value queries: the page stops at max_depth")


class TierInfo(BaseModel):
    count: int
    first_rank: int | None
    min_risk: float | None


class Tiers(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "ranked": 641, "cuts": {"critical": 0.05, "high": 0.15, "elevated": 0.3},
        "tiers": {"critical": {"count": 33, "first_rank": 1, "min_risk": 0.51}},
        "churned": 114, "alert_tiers": {"critical": 28, "low": 381, "churned": 114}}]})

    ranked: int
    cuts: dict[str, float]
    tiers: dict[str, TierInfo]
    churned: int = Field(description="Users silent for more than H days (not ranked)")
    alert_tiers: dict[str, int] = Field(
        description="Users per stored tier (with hysteresis: the tiers alerts announce)")


CSV_PAGE = 1000


async def _csv(store: StoreDep, first: int, count: int, n: int, policy: TierPolicy
               ) -> AsyncIterator[bytes]:
    """The selection page by page (never all of it in memory)."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["rank", "user_id", "risk", "tier", "percentile", "top_reason"])
    yield buf.getvalue().encode()
    for page in range(first, first + count, CSV_PAGE):
        rows = await store.top(page, min(CSV_PAGE, first + count - page))
        if not rows:
            break
        reasons = await store.top_reasons([u for u, _ in rows])
        buf.seek(0)
        buf.truncate()
        for i, ((uid, risk), why) in enumerate(zip(rows, reasons, strict=True)):
            pct, t = rank_position(page + i, n, policy, risk)
            out.writerow([page + i + 1, uid, repr(risk), t, repr(pct), why])
        yield buf.getvalue().encode()


@router.get("/top", response_model=None,
            responses={200: {"model": TopPage, "content": {"text/csv": {}}},
                       **responses(422, 503)})
async def top(request: Request, store: StoreDep, settings: SettingsDep,
              k: Annotated[int | None, Query(ge=1, le=MAX_PAGE)] = None,
              percent: Annotated[float | None, Query(gt=0, le=100)] = None,
              offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
              tier: Annotated[str | None, Query(pattern="^(critical|high|elevated|low)$")] = None,
              format: Annotated[Literal["json", "csv"], Query(
                  description="csv: streamed, the whole selection when k is not given "
                              "(user_id, risk, tier, percentile, top_reason)")] = "json",
              sort: Annotated[Sort, Query(
                  description="risk; value: CLV at the last value fit; saved_value: "
                              "expected saved value = risk x CLV")] = "risk",
              min_value_quantile: Annotated[float | None, Query(
                  ge=0, lt=1, description="only users whose CLV is in the top (1 - q) "
                                          "share, e.g. 0.75: the top value quartile")] = None,
              segment: Annotated[str | None, Query(
                  pattern=SEGMENT_PATTERN, description="only this RFM persona")] = None,
              ) -> FastJSON | StreamingResponse:
    """The riskiest users: ``k`` of them, or the top ``percent`` %, from ``offset``
    (both: at most ``k`` of the top ``percent`` %); within ``tier`` when given (then
    ``offset`` counts from the tier's first rank). With ``sort``, ``min_value_quantile``
    or ``segment``: value-aware targeting (``api/value_rank.py``); ``offset`` then counts
    within the selection, and the page stops at ``max_depth`` (offset + k <= 100,000;
    ``truncated`` says when it did)."""
    q = TopQuery(k, percent, offset, tier, sort, min_value_quantile, segment)
    n, start, end = await window(store, settings, q)
    policy = settings.tier_policy()
    if q.value_aware:
        items, extra = await value_items(fits_of(request), policy_of(request), n, start, end, q)
        if format == "csv":
            return _value_csv(items)
        return FastJSON({"ranked": n, "offset": offset, "items": items, "sort": sort,
                         **extra})
    if format == "csv":
        count = end - start - offset if k is None else min(end - start - offset, k)
        return await guarded(_csv(store, start + offset, max(0, count), n, policy),
                             media_type="text/csv",
                             headers={"Content-Disposition": "attachment; filename=top.csv"})
    items = await risk_items(store, policy, n, start, end, q)
    return FastJSON({"ranked": n, "offset": offset, "items": items})


def _value_csv(items: list[dict[str, Any]]) -> StreamingResponse:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["rank", "user_id", "risk", "tier", "percentile", "clv",
                  "expected_saved_value", "segment"])
    for it in items:
        out.writerow([it["rank"], it["user_id"], repr(it["risk"]), it["tier"],
                      repr(it["percentile"]), it["clv"], it["expected_saved_value"],
                      it["segment"]])
    return StreamingResponse(iter([buf.getvalue().encode()]), media_type="text/csv",
                             headers={"Content-Disposition": "attachment; filename=top.csv"})


@router.get("/tiers", response_model=Tiers, responses=responses(503))
async def tiers(store: StoreDep, settings: SettingsDep) -> Tiers:
    """Users per tier by rank now (each tier's first rank and lowest risk), churned users,
    and users per stored (alerted) tier."""
    n = await store.count_ranked()
    out: dict[str, TierInfo] = {}
    for name, (a, b) in (await bounds(store, settings, n)).items():
        last = await store.top(b - 1, 1) if b > a else []
        out[name] = TierInfo(count=b - a, first_rank=a + 1 if b > a else None,
                             min_risk=last[0][1] if last else None)
    stored = await store.tier_counts()
    cuts = settings.tier_policy().cuts
    return Tiers(ranked=n, cuts=dict(zip(TIERS, cuts, strict=False)), tiers=out,
                 churned=stored.get(CHURNED, 0), alert_tiers=stored)
