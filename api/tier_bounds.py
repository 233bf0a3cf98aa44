"""Where the tiers begin and end in the ranking (docs/design.md section 5): by share of
the ranked users, or, with absolute thresholds, by the users at or above each risk."""

from __future__ import annotations

import math

from core.settings import Settings
from core.tiers import TIERS
from state.redis_store import RedisFeatureStore


def tier_bounds(n: int, cuts: tuple[float, float, float]) -> dict[str, tuple[int, int]]:
    """0-based [start, end) ranks of each tier: (r / n) < cut <=> r < ceil(cut * n)."""
    edges = [0, *(math.ceil(c * n) for c in cuts), n]
    return {t: (edges[i], edges[i + 1]) for i, t in enumerate(TIERS)}


async def bounds(store: RedisFeatureStore, settings: Settings, n: int
                 ) -> dict[str, tuple[int, int]]:
    """Rank ranges of the tiers; in absolute mode, from the number of users at or above
    each risk threshold."""
    policy = settings.tier_policy()
    if not policy.absolute:
        return tier_bounds(n, policy.cuts)
    edges = [0, *[await store.count_at_least(c) for c in policy.cuts], n]
    return {t: (edges[i], edges[i + 1]) for i, t in enumerate(TIERS)}
