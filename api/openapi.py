"""The OpenAPI document of one app, completed with what depends on its settings.

FastAPI declares ``X-API-Key`` on exactly the operations that carry the key
dependency (``api/main.py`` adds it only where the settings require a key); here
those operations also get their 401/403 responses, and ``POST /v1/events`` its body
schema (the configured event types and ``CHURN_API_MAX_EVENTS``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.errors import DESCRIPTIONS
from api.event_schema import events_body
from core.events import latest_allowed_ms
from core.settings import Settings

ERROR_REF = {"$ref": "#/components/schemas/Error"}


def install(app: FastAPI, settings: Settings) -> None:
    made_for: list[int | None] = []  # the event-time bound the cached document states

    def openapi() -> dict[str, Any]:
        latest = latest_allowed_ms(settings.max_future_seconds)
        if app.openapi_schema is None or made_for != [latest]:  # it moves once a day
            made_for[:] = [latest]
            spec = get_openapi(title=app.title, version=app.version,
                               description=app.description, routes=app.routes)
            body = spec["paths"]["/v1/events"]["post"]["requestBody"]
            body["content"]["application/json"]["schema"] = events_body(
                settings.allowed_types(), settings.api_max_events, latest)
            for ops in spec["paths"].values():
                for op in ops.values():
                    if op.get("security"):
                        for code in (401, 403):
                            op["responses"][str(code)] = {
                                "description": DESCRIPTIONS[code],
                                "content": {"application/json": {"schema": ERROR_REF}}}
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
