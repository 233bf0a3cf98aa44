"""Every Prometheus metric of the API, declared in one place, and ``GET /metrics``.

Requests are labelled by route template (``/v1/users/{user_id}``), never by the
concrete path, so no user id reaches a label.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import metrics_of

LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.requests = Histogram("churn_api_request_seconds",
                                  "HTTP request duration by route template, method, status",
                                  ["route", "method", "status"], buckets=LATENCY, registry=r)
        self.events = Counter("churn_api_events_produced_total",
                              "Events accepted by POST /v1/events and acknowledged by Kafka",
                              registry=r)
        self.events_rejected = Counter("churn_api_events_rejected_total",
                                       "Events refused by POST /v1/events (validation)",
                                       registry=r)



class MetricsMiddleware:
    """Pure ASGI middleware (Starlette's ``@app.middleware("http")`` costs a task and a
    stream per request): duration by route template, method and status."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, str, int], Any] = {}  # .labels() costs a lock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            key = (getattr(route, "path", None) or "unmatched", scope["method"], status[0])
            child = self._children.get(key)
            if child is None:  # bounded: route templates x methods x statuses
                child = self._children[key] = self.metrics.requests.labels(
                    key[0], key[1], str(key[2]))
            child.observe(time.perf_counter() - started)


router = APIRouter(tags=["status"])


@router.get("/metrics", include_in_schema=True, response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus exposition of the API's metrics."""
    m: ApiMetrics = metrics_of(request)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
