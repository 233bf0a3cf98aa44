"""``GET /v1/status``, ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import SettingsDep, StoreDep
from api.schemas import Health, Status
from api.security import ReadAccess
from core.timefmt import rfc3339

router = APIRouter(tags=["status"])


@router.get("/v1/status", response_model=Status, dependencies=[ReadAccess])  # open unless
# CHURN_API_READ_AUTH (checked per request: /v1/status is not on the hot path)
async def status(store: StoreDep) -> Status:
    stats = await store.stats()
    wms = await store.watermarks()
    wm = max(wms.values()) if wms else None
    clock = await store.clock()
    swept = [clock.get(f"s:{p}") for p in wms]
    swept_until = min(swept) if swept and None not in swept else None  # type: ignore[type-var]
    on_time, late, outside = stats.get("applied", 0), stats.get("late", 0), \
        stats.get("late_outside", 0)
    applied = on_time + late + outside
    rejected, dup = stats.get("rejected", 0), stats.get("duplicate", 0)
    return Status(
        watermark=rfc3339(wm) if wm is not None else None, watermark_ms=wm,
        swept_until=rfc3339(swept_until) if swept_until is not None else None,
        swept_until_ms=swept_until, alerts=stats.get("alerts", 0),
        labels={k: stats.get(k, 0) for k in ("anchors", "snapshots", "released",
                                             "released_label_1")},
        partitions={str(p): v for p, v in sorted(wms.items())},
        events_consumed=applied + rejected + dup, events_applied=applied,
        events_rejected=rejected, events_duplicate=dup, events_late=late + outside,
        events_late_outside_window=outside,
        rejected_by_reason={k[9:]: v for k, v in stats.items() if k.startswith("rejected:")},
        applied_by_type={k[5:]: v for k, v in stats.items() if k.startswith("type:")},
        state_rebuilds=stats.get("state_rebuilds", 0),
    )


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


async def _kafka_reachable(bootstrap: str, timeout: float) -> None:
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
    finally:
        await client.close()


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(store: StoreDep, settings: SettingsDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(store.r.ping(), 2.0)
        checks["redis"] = "ok"
    except Exception as exc:  # report, don't crash: this is a probe
        checks["redis"] = f"error: {type(exc).__name__}"
    try:
        await _kafka_reachable(settings.kafka_bootstrap, 2.0)
        checks["kafka"] = "ok"
    except Exception as exc:
        checks["kafka"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
