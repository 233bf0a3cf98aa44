"""The body of ``GET /v1/users/{user_id}`` (``api.schemas.UserRisk``) from what the store
returns: the features at the reference time, the score and its reasons (or the rule,
computed now, when no score refers to that time), the rank position and tier, the
customer value and segment. Routes parse and answer; this assembles."""

from __future__ import annotations

from typing import Any

from api.alerts import crossings_json
from api.value import FitCache, segment_of, value_of, with_value_inputs
from core.features import DAY_MS, Aggregates, compute_features, window_aggregates
from core.long_range import long_range
from core.model import reason_rows
from core.rules import RULE_NAME, recency_frequency_risk
from core.scoring import RuleScorer
from core.settings import Settings
from core.tiers import ALL_TIERS, CHURNED, TierPolicy, rank_position
from core.timefmt import rfc3339
from state.store import UserView


def default_as_of(view: UserView) -> int:
    """The reference time when none is asked for: the stored score's, or the newest event."""
    st, score = view.state, view.score
    return max(st.last_ms, score.as_of_ms) if score is not None else st.last_ms


async def user_risk(user_id: str, view: UserView, now: int, fits: FitCache,
                    settings: Settings, policy: TierPolicy) -> dict[str, Any]:
    state = view.state
    agg = window_aggregates(state, now)
    feats = compute_features(agg)
    long = long_range(agg)
    fit = await fits.get()
    value, summary = value_of(fit, agg, settings)
    segment = segment_of(fit, state.purchase_days, summary.mean_spend if summary else 0.0,
                         now) if fit is not None else None
    risk, scorer, scored_at, version, why = await _score(view, now, feats, long, agg, fits,
                                                          settings)
    as_of_text = rfc3339(now)  # usually also the scoring and the newest event's time
    return {
        "user_id": user_id, "as_of": as_of_text, "risk": risk, "scorer": scorer,
        "model_version": version,
        "scored_at": as_of_text if scored_at == now else rfc3339(scored_at),
        **_position(view, policy, risk),
        "alert_tier": ALL_TIERS[view.tier.tier] if view.tier is not None else None,
        "reasons": why, "features": feats, "long_range": long,
        "value": value, "segment": segment,
        "expected_saved_value": risk * value["clv"] if value and value["clv"] is not None
        else None,
        "tier_history": crossings_json(view.history),
        "first_event": rfc3339(state.first_ms),
        "last_event": as_of_text if state.last_ms == now else rfc3339(state.last_ms)}


async def _score(view: UserView, now: int, feats: dict[str, float], long: dict[str, float],
                 agg: Aggregates, fits: FitCache, settings: Settings
                 ) -> tuple[float, str, int, int, list[dict[str, Any]]]:
    """(risk, scorer, scored at, model version, reasons): the stored score when it refers
    to ``now``, else the transparent rule computed now."""
    score, h = view.score, settings.churn_horizon_days
    if score is not None and score.as_of_ms == now:
        bg = await fits.bgnbd_at(now // DAY_MS)  # the fit that served the score
        values = with_value_inputs({**feats, **long}, score.reasons, bg, agg, h)
        return (score.risk, score.scorer, score.as_of_ms, score.version,
                reason_rows(score.reasons, values, view.means))
    why = reason_rows(RuleScorer(h).score([feats])[1][0], feats, view.means)
    return recency_frequency_risk(feats, h), RULE_NAME, now, 0, why


def _position(view: UserView, policy: TierPolicy, risk: float) -> dict[str, Any]:
    """Rank (1-based), percentile and tier among the ranked users; a churned user is
    not ranked."""
    if view.rank is not None:
        stored = view.score.risk if view.score is not None else risk
        pct, tier = rank_position(view.rank, view.ranked, policy, stored)
        return {"rank": view.rank + 1, "ranked": view.ranked, "percentile": pct,
                "tier": tier}
    churned = view.tier is not None and ALL_TIERS[view.tier.tier] == CHURNED
    return {"rank": None, "ranked": view.ranked, "percentile": None,
            "tier": CHURNED if churned else None}
