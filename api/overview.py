"""The retention team's overview (``GET /v1/overview`` and the console's first page):
users per tier now and churned, the monthly picture and the cohort retention table
(core/monthly.py), read from the counters the worker keeps in Redis; the value at risk
per tier taken with the newest value fit (core/value_at_risk.py) and the model's quality
over time (core/quality_history.py, from the newest checkpoint)."""

from __future__ import annotations

from typing import Any

from api.schemas import MonthFigures, Overview, QualityPoint, ValueAtRisk
from api.tier_bounds import bounds
from api.value import FitCache
from core.monthly import table
from core.settings import Settings
from core.tiers import CHURNED
from core.timefmt import rfc3339
from state.models import ModelStore
from state.redis_store import RedisFeatureStore


def quality_points(metrics: dict[str, Any]) -> list[QualityPoint]:
    """The history of a checkpoint's metrics (``GET /v1/model``, the overview)."""
    return [QualityPoint(at=rfc3339(p["t"]), **{k: v for k, v in p.items() if k != "t"})
            for p in metrics.get("history") or []]


async def overview(store: RedisFeatureStore, settings: Settings, fits: FitCache,
                   models: ModelStore) -> Overview:
    rows, cohorts = table(await store.months())
    wms = await store.watermarks()
    ranked = await store.count_ranked()
    tiers = {t: b - a for t, (a, b) in (await bounds(store, settings, ranked)).items()}
    tiers[CHURNED] = (await store.tier_counts()).get(CHURNED, 0)
    fit = await fits.get()
    at_risk = None
    if fit is not None and fit.book is not None:
        at_risk = ValueAtRisk(fit_version=fit.params.version, as_of=rfc3339(fit.as_of_ms),
                              tiers=fit.book["tiers"])
    metrics = (await models.meta()).get("metrics", {})
    return Overview(as_of=rfc3339(max(wms.values())) if wms else None, tiers=tiers,
                    months=[MonthFigures(**r._asdict()) for r in rows], cohorts=cohorts,
                    value_at_risk=at_risk, scorer=metrics.get("champion"),
                    quality=quality_points(metrics))
