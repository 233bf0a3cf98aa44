"""``GET /v1/alerts``: the newest tier crossings, newest first, optionally only those
into one tier (a bounded feed written with the tier changes; ``risk.alerts`` carries
the same crossings with their reasons)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.alerts import crossings_json
from api.deps import StoreDep
from api.errors import responses
from api.responses import FastJSON
from api.schemas import AlertsPage
from state.store import FEED

router = APIRouter(prefix="/v1", tags=["alerts"])
TIER_PATTERN = "^(critical|high|elevated|low|churned)$"


@router.get("/alerts", response_model=None,
            responses={200: {"model": AlertsPage}, **responses(422, 503)})
async def alerts(store: StoreDep,
                 tier: Annotated[str | None, Query(pattern=TIER_PATTERN,
                                                   description="only crossings into it")] = None,
                 limit: Annotated[int, Query(ge=1, le=FEED)] = 100) -> FastJSON:
    return FastJSON({"alerts": crossings_json(await store.alerts_feed(limit, tier))})
