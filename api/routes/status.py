"""``GET /v1/status``, ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import SettingsDep, StoreDep
from api.errors import responses
from api.schemas import Health, Status, WorkerInfo
from core.timefmt import rfc3339
from state.redis_store import store_prefix
from state.workers import ALIVE_SECONDS, WorkerRegistry, unresolved_crashes

router = APIRouter(tags=["status"])  # /v1/status: with the key when reads need one
probes = APIRouter(tags=["status"])  # always open


def _registry(client: object, prefix: str) -> WorkerRegistry:
    """The worker beats (global keys: hash-tagged on a cluster)."""
    return WorkerRegistry(client, store_prefix(client, prefix))


@router.get("/v1/status", response_model=Status, responses=responses(503))
async def status(store: StoreDep, settings: SettingsDep) -> Status:
    now = time.time()
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
        events_unconfirmed_time=stats.get("clock:unconfirmed", 0),
        workers=[WorkerInfo(worker=b.worker, at=rfc3339(int(b.at * 1000)),
                            state=b.state if b.state != "running" or b.at >= now - ALIVE_SECONDS
                            else "silent", partitions=b.partitions, reason=b.reason)
                 for b in await _registry(store.r, settings.redis_prefix).beats()],
        state_rebuilds=stats.get("state_rebuilds", 0),
    )


@probes.get("/healthz", response_model=Health, response_model_exclude_none=True)
async def healthz() -> Health:
    return Health(status="ok")


async def _kafka_reachable(bootstrap: str, timeout: float) -> None:
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
    finally:
        await client.close()


@probes.get("/readyz", response_model=Health, responses={503: {
    "model": Health, "description": "Redis or Kafka unreachable (detail.error says which)"}})
async def readyz(store: StoreDep, settings: SettingsDep) -> JSONResponse:
    """Redis and Kafka reachable (each within 2 s) and no stream worker crashed without
    a newer one running since (its heartbeat): 200, else 503 with ``checks`` and the
    project's error format in ``detail`` (``worker_crashed`` for the last)."""
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
    if checks["redis"] == "ok":
        try:  # a crashed worker no worker has replaced since: not ready
            beats = await _registry(store.r, settings.redis_prefix).beats()
            crashed = unresolved_crashes(beats)
            checks["workers"] = "ok" if not crashed else "error: crashed " + ", ".join(
                f"{b.worker} ({b.reason})" for b in crashed)
        except Exception as exc:
            checks["workers"] = f"error: {type(exc).__name__}"
    down = [name for name, v in checks.items() if v != "ok"]
    if not down:
        return JSONResponse(Health(status="ok", checks=checks).model_dump(exclude_none=True))
    error = ("worker_crashed" if down[0] == "workers" else f"{down[0]}_unavailable") \
        if len(down) == 1 else "unavailable"
    body = Health(status="unavailable", checks=checks,
                  detail={"error": error, "unavailable": down})
    return JSONResponse(body.model_dump(exclude_none=True), status_code=503,
                        headers={"Retry-After": "5"})
