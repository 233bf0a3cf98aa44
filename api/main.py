"""The FastAPI application (``churnstream api``); OpenAPI at /docs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import docs, errors, openapi
from api import metrics as api_metrics
from api.console import pages as console
from api.metrics import ApiMetrics, MetricsMiddleware
from api.routes import alerts, events, model, overview, ranking, segments, status, users
from api.routes.events import Producer
from api.security import ReadAccess, WriteAccess
from api.value import FitCache
from core.gc_tuning import tune_gc
from core.settings import Settings
from state.models import ModelStore
from state.redis_store import RedisFeatureStore, connect, store_prefix
from state.value_store import ValueStore

# Bounded waits on Redis: a request during an outage fails within about this long (503
# redis_unavailable) instead of hanging; API commands are small, a healthy Redis answers
# them in milliseconds
REDIS_CONNECT_TIMEOUT = 1.0
REDIS_TIMEOUT = 1.5


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.load()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = connect(settings.redis_url, socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
                         socket_timeout=REDIS_TIMEOUT)
        app.state.settings = settings
        app.state.store = store = RedisFeatureStore(client, settings.redis_prefix,
                                                    partitions=settings.partitions)
        store.hot.timeout = store.mux.timeout = REDIS_TIMEOUT
        glob = store_prefix(client, settings.redis_prefix)
        app.state.models = ModelStore(client, glob)
        app.state.value_fits = FitCache(ValueStore(client, mux=store.mux, keys=store.keys),
                                        every_days=settings.value_fit_every_days,
                                        lag_days=settings.value_fit_lag_days,
                                        horizon_days=settings.churn_horizon_days)
        app.state.producer = producer = Producer(settings)
        try:
            yield
        finally:
            producer.close()
            await store.close()
            await client.aclose()

    app = FastAPI(title="churnstream", version="0.1.0", lifespan=lifespan, docs_url=None,
                  redoc_url=None,  # served offline by api/docs.py
                  description="Real-time churn risk: per-user rolling features, risk, tiers, "
                              "reasons, Top-K and the online model.")
    app.state.metrics = metrics = ApiMetrics()
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.state.settings = settings
    app.state.tier_policy = settings.tier_policy()
    app.state.playbook = settings.playbook()  # validated: start-up fails on a bad file
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST"], allow_headers=["X-API-Key",
                                                                         "Content-Type"])
    errors.install(app)
    # the key check only where it applies, so that OpenAPI declares X-API-Key exactly
    # there (and each dependency costs every request); the user lookup first, as routes
    # are matched in order
    reads = [ReadAccess] if settings.api_keys and settings.api_read_auth else []
    for read in (users.router, ranking.router, model.router, segments.router, overview.router,
                 alerts.router, status.router):
        app.include_router(read, dependencies=reads)
    app.include_router(api_metrics.router)
    app.include_router(events.router, dependencies=[WriteAccess] if settings.api_keys else [])
    app.include_router(status.probes)
    openapi.install(app, settings)
    docs.install(app)
    console.install(app)
    return app


def run_api(settings: Settings) -> None:
    import uvicorn

    app = create_app(settings)
    tune_gc()
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="warning")
