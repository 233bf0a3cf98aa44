"""Who to target: the selection of ``GET /v1/top`` (by count, top percentage, tier; by
risk, or value-aware: sorted by CLV or expected saved value, filtered by a minimum value
quantile or a segment), for the route and the console's targeting page alike."""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, Field

from api.tier_bounds import bounds
from api.value import FitCache
from api.value_rank import Sort, row_json, value_page
from core.segments import SEGMENTS
from core.settings import Settings
from core.tiers import TierPolicy, rank_position
from state.redis_store import RedisFeatureStore

MAX_PAGE = 10_000
VALUE_MAX_DEPTH = 100_000  # rows a value-aware query reads at most (offset + k)
MAX_OFFSET = 1_000_000_000
SEGMENT_PATTERN = f"^({'|'.join(SEGMENTS)})$"


class TopQueryChecks(BaseModel):
    """The bounds ``GET /v1/top`` puts on its parameters, for selections made elsewhere
    (the console's form)."""

    k: int | None = Field(None, ge=1, le=MAX_PAGE)
    percent: float | None = Field(None, gt=0, le=100)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    tier: str | None = Field(None, pattern="^(critical|high|elevated|low)$")
    sort: Literal["risk", "value", "saved_value"] = "risk"
    min_value_quantile: float | None = Field(None, ge=0, lt=1)
    segment: str | None = Field(None, pattern=SEGMENT_PATTERN)


class TopQuery(NamedTuple):
    k: int | None = None
    percent: float | None = None
    offset: int = 0
    tier: str | None = None
    sort: Sort = "risk"
    min_value_quantile: float | None = None
    segment: str | None = None

    @property
    def value_aware(self) -> bool:
        return self.sort != "risk" or self.min_value_quantile is not None \
            or self.segment is not None


async def window(store: RedisFeatureStore, settings: Settings, q: TopQuery
                 ) -> tuple[int, int, int]:
    """(ranked users, first rank, end rank) of the selection: the tier's ranks, cut to the
    top ``percent`` % of everyone from there."""
    n = await store.count_ranked()
    start, end = 0, n
    if q.tier is not None:
        start, end = (await bounds(store, settings, n))[q.tier]
    if q.percent is not None:
        end = min(end, start + math.ceil(q.percent / 100 * n))
    return n, start, end


async def risk_items(store: RedisFeatureStore, policy: TierPolicy, n: int, start: int,
                     end: int, q: TopQuery) -> list[dict[str, Any]]:
    count = min(end - start - q.offset, q.k if q.k is not None else MAX_PAGE)
    rows = await store.top(start + q.offset, count) if count > 0 else []
    items = []
    for i, (uid, risk) in enumerate(rows):  # plain dicts: the schema is TopPage's
        r0 = start + q.offset + i
        pct, t = rank_position(r0, n, policy, risk)
        items.append({"user_id": uid, "rank": r0 + 1, "risk": risk, "percentile": pct,
                      "tier": t})
    return items


async def value_items(fits: FitCache, policy: TierPolicy, n: int, start: int, end: int,
                      q: TopQuery) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The value-aware page and what it adds to the body (``min_clv``, the fit version,
    ``max_depth``, ``truncated``)."""
    k = q.k if q.k is not None else MAX_PAGE
    if q.percent is not None:
        k = min(k, end - start)
    k = max(0, min(k, MAX_PAGE))
    # each row walked past is a Redis lookup: the page stops at VALUE_MAX_DEPTH
    truncated = q.offset + k > VALUE_MAX_DEPTH
    k = max(0, min(k, VALUE_MAX_DEPTH - q.offset))
    fit = await fits.get()
    rows, min_clv = await value_page(fits.store, fit, q.sort, q.offset, k,
                                     q.min_value_quantile, q.segment,
                                     (start, end) if q.tier is not None else None) \
        if k else ([], None)
    items = [row_json(r, fit, n, lambda r0, nn, risk: rank_position(r0, nn, policy, risk))
             for r in rows]
    return items, {"min_clv": min_clv,
                   "value_fit_version": fit.params.version if fit is not None else None,
                   "max_depth": VALUE_MAX_DEPTH, "truncated": truncated}
