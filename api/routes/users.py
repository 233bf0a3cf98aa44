"""``GET /v1/users/{user_id}``: features, risk and the time they refer to."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from api.deps import fits_of, policy_of, settings_of, store_of
from api.errors import responses
from api.event_schema import AS_OF
from api.responses import FastJSON
from api.schemas import UserRisk
from api.user_risk import default_as_of, user_risk
from core.timefmt import parse_time, rfc3339

router = APIRouter(prefix="/v1", tags=["users"])


# The parameters are declared for OpenAPI and read from the request by hand: FastAPI's
# per-request parameter machinery (type inspection for every path, query, header and
# cookie field) cost a quarter of this route's time (bench/api_latency.py).
PARAMETERS = [
    {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"},
     "example": "u42"},
    {"name": "as_of", "in": "query", "required": False,
     "schema": AS_OF, "example": "2019-11-30T00:00:00Z",
     "description": "Reference time (RFC 3339 or epoch ms), not before the user's newest "
                    "event (else 409 as_of_before_newest_event); default: the stored "
                    "score's"},
]


@router.get("/users/{user_id}", response_model=None, openapi_extra={"parameters": PARAMETERS},
            responses={200: {"model": UserRisk}, **responses(404, 409, 422, 503)})
async def get_user(request: Request) -> FastJSON:
    """Risk, tier, reasons and features of one user (the body follows ``UserRisk``; it is
    built directly, without a second validation pass, for speed)."""
    user_id: str = request.path_params["user_id"]
    as_of = request.query_params.get("as_of") if request.scope["query_string"] else None
    store, settings, fits = store_of(request), settings_of(request), fits_of(request)
    view = await store.user_view(user_id)  # one round trip
    if view is None:
        raise HTTPException(404, detail={"error": "unknown_user", "user_id": user_id})
    state = view.state
    now = default_as_of(view)
    if as_of is not None:
        try:
            now = parse_time(as_of)
        except ValueError:
            raise HTTPException(422, detail={"error": "invalid_time", "as_of": as_of}) from None
        if now < state.last_ms:  # a conflict with the user's state, not a malformed time
            raise HTTPException(409, detail={
                "error": "as_of_before_newest_event", "newest_event": rfc3339(state.last_ms)})
    return FastJSON(await user_risk(user_id, view, now, fits, settings, policy_of(request)))
