"""Where the tiers begin and end in the ranking (docs/design.md section 5): by share of
the ranked users, or, with absolute thresholds, by the users at or above each risk."""

from __future__ import annotations

from core.settings import Settings
from core.tiers import TIERS, tier_bounds
from state.redis_store import RedisFeatureStore


async def bounds(store: RedisFeatureStore, settings: Settings, n: int
                 ) -> dict[str, tuple[int, int]]:
    """Rank ranges of the tiers; in absolute mode, from the number of users at or above
    each risk threshold."""
    policy = settings.tier_policy()
    if not policy.absolute:
        return tier_bounds(n, policy.cuts)
    edges = [0, *[await store.count_at_least(c) for c in policy.cuts], n]
    return {t: (edges[i], edges[i + 1]) for i, t in enumerate(TIERS)}
