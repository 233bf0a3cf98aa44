"""The API's error bodies, as documented, and its answer to a Redis outage.

Every refusal is ``{"detail": {"error": "<code>", ...}}``; FastAPI's own request
validation keeps its ``{"detail": [{"loc", "msg", "type"}, ...]}`` list, so a 422 is
documented as either. A Redis that cannot be reached (refused, reset, timed out) is
503 ``redis_unavailable`` with ``Retry-After`` on every endpoint that reads it, logged
in one line per request (no traceback), never a plain 500.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from state.clients.resp import ReplyError

log = logging.getLogger("churnstream.api")

RETRY_AFTER = "5"
# what a lost or unreachable Redis raises: redis-py's errors, and OSError (refused, reset,
# timeouts; asyncio's TimeoutError is one) from the hot-path and multiplexed connections
OUTAGES: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    error: str = Field(description="Machine-readable code (e.g. unknown_user, "
                                   "redis_unavailable); more fields depend on the code")


class Error(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"detail": {"error": "redis_unavailable", "message": "ConnectionError: ..."}}]})

    detail: ErrorDetail


class FieldError(BaseModel):
    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str
    type: str


class Unprocessable(BaseModel):
    """422: FastAPI's list of parameter errors, or the project's ``{"error": ...}``."""

    detail: list[FieldError] | ErrorDetail


DESCRIPTIONS = {
    401: "X-API-Key missing (api_key_missing)", 403: "X-API-Key wrong (api_key_invalid)",
    404: "Not found", 409: "Conflicts with the current state (see the error code)",
    413: "Body too large (body_too_large)", 422: "Invalid request",
    503: "Redis or Kafka unreachable (redis_unavailable, kafka_unavailable); retry",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, each with its body model."""
    return {c: {"model": Unprocessable if c == 422 else Error, "description": DESCRIPTIONS[c]}
            for c in codes}


def unavailable(error: str, exc: BaseException | str) -> JSONResponse:
    message = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    return JSONResponse({"detail": {"error": error, "message": message}}, status_code=503,
                        headers={"Retry-After": RETRY_AFTER})


async def _redis_outage(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s -> 503 redis_unavailable (%s: %s)", request.method,
                request.url.path, type(exc).__name__, exc)
    return unavailable("redis_unavailable", exc)


# Redis answered, with an error: state another client broke (WRONGTYPE), a script bug
REPLY_ERRORS: tuple[type[Exception], ...] = (redis.exceptions.ResponseError, ReplyError)


async def _redis_reply_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s -> 500 redis_error (%s: %s)", request.method, request.url.path,
              type(exc).__name__, exc)
    return JSONResponse({"detail": {"error": "redis_error",
                                    "message": f"{type(exc).__name__}: {exc}"}},
                        status_code=500)


def install(app: FastAPI) -> None:
    """Outage handlers (Starlette's ExceptionMiddleware: answered, not re-raised); a Redis
    error reply is a JSON 500 ``redis_error`` in one log line, not a traceback."""
    for kind in OUTAGES:
        app.add_exception_handler(kind, _redis_outage)
    for kind in REPLY_ERRORS:
        app.add_exception_handler(kind, _redis_reply_error)
