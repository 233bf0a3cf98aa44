"""``GET /v1/users/{user_id}``: features, risk and the time they refer to."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from api.deps import fits_of, policy_of, settings_of, store_of
from api.errors import responses
from api.event_schema import AS_OF
from api.responses import FastJSON
from api.schemas import UserRisk
from api.value import segment_of, value_of, with_value_inputs
from core.features import DAY_MS, compute_features, window_aggregates
from core.long_range import long_range
from core.model import reason_rows
from core.rules import RULE_NAME, recency_frequency_risk
from core.scoring import RuleScorer
from core.tiers import ALL_TIERS, CHURNED, rank_position
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
    state, score, stored = view.state, view.score, view.tier
    now = max(state.last_ms, score.as_of_ms) if score is not None else state.last_ms
    if as_of is not None:
        try:
            now = parse_time(as_of)
        except ValueError:
            raise HTTPException(422, detail={"error": "invalid_time", "as_of": as_of}) from None
        if now < state.last_ms:  # a conflict with the user's state, not a malformed time
            raise HTTPException(409, detail={
                "error": "as_of_before_newest_event", "newest_event": rfc3339(state.last_ms)})
    agg = window_aggregates(state, now)
    feats = compute_features(agg)
    long = long_range(agg)
    fit = await fits.get()
    value, summary = value_of(fit, agg, settings)
    segment = segment_of(fit, state.purchase_days, summary.mean_spend if summary else 0.0,
                         now) if fit is not None else None
    version, why = 0, []
    if score is not None and score.as_of_ms == now:
        risk, scorer, scored_at = score.risk, score.scorer, score.as_of_ms
        version = score.version
        why = reason_rows(score.reasons, with_value_inputs(  # under the fit that served
            {**feats, **long}, score.reasons, await fits.bgnbd_at(
                now // DAY_MS), agg, settings.churn_horizon_days),
            view.means)
    else:  # no stored score for this reference time: the transparent rule, computed now
        risk = recency_frequency_risk(feats, settings.churn_horizon_days)
        scorer, scored_at = RULE_NAME, now
        why = reason_rows(RuleScorer(settings.churn_horizon_days).score([feats])[1][0], feats,
                          view.means)
    alert_tier = ALL_TIERS[stored.tier] if stored is not None else None
    position: dict[str, object] = {"rank": None, "ranked": view.ranked, "percentile": None,
                                   "tier": None}
    if view.rank is not None:
        pct, tier = rank_position(view.rank, view.ranked, policy_of(request),
                                     score.risk if score is not None else risk)
        position = {"rank": view.rank + 1, "ranked": view.ranked, "percentile": pct,
                    "tier": tier}
    elif alert_tier == CHURNED:
        position["tier"] = CHURNED
    as_of_text = rfc3339(now)  # usually also the scoring and the newest event's time
    return FastJSON({
        "user_id": user_id, "as_of": as_of_text, "risk": risk, "scorer": scorer,
        "model_version": version,
        "scored_at": as_of_text if scored_at == now else rfc3339(scored_at), **position,
        "alert_tier": alert_tier, "reasons": why, "features": feats, "long_range": long,
        "value": value, "segment": segment,
        "expected_saved_value": risk * value["clv"] if value and value["clv"] is not None
        else None,
        "first_event": rfc3339(state.first_ms),
        "last_event": as_of_text if state.last_ms == now else rfc3339(state.last_ms)})
