"""The retention team's overview (``GET /v1/overview`` and the console's first page):
users per tier now and churned, the monthly picture and the cohort table
(core/monthly.py), read from the counters the worker keeps in Redis."""

from __future__ import annotations

from api.schemas import MonthFigures, Overview
from api.tier_bounds import bounds
from core.monthly import table
from core.settings import Settings
from core.tiers import CHURNED
from core.timefmt import rfc3339
from state.redis_store import RedisFeatureStore


async def overview(store: RedisFeatureStore, settings: Settings) -> Overview:
    rows, cohorts = table(await store.months())
    wms = await store.watermarks()
    ranked = await store.count_ranked()
    tiers = {t: b - a for t, (a, b) in (await bounds(store, settings, ranked)).items()}
    tiers[CHURNED] = (await store.tier_counts()).get(CHURNED, 0)
    return Overview(as_of=rfc3339(max(wms.values())) if wms else None, tiers=tiers,
                    months=[MonthFigures(**r._asdict()) for r in rows], cohorts=cohorts)
