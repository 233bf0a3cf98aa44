"""Redis backend of the feature store: one Lua script per event, one MULTI/EXEC per batch.

:class:`RedisFeatureStore` is the three concerns of the backend over one connection
(:mod:`state.redis_base`): per-user state (:mod:`state.redis_events`), scores and tiers
(:mod:`state.redis_scores`), labels and clocks (:mod:`state.redis_labels`).
"""

from __future__ import annotations

from state.redis_base import (
    FEATURE_SCRIPTS,
    RECOMMENDED_LISTPACK_VALUE,
    connect,
    is_cluster,
    keys_for,
    store_prefix,
)
from state.redis_events import EventOps
from state.redis_labels import LabelOps
from state.redis_scores import ScoreOps

__all__ = ["FEATURE_SCRIPTS", "RECOMMENDED_LISTPACK_VALUE", "RedisFeatureStore", "connect",
           "is_cluster", "keys_for", "store_prefix"]


class RedisFeatureStore(EventOps, ScoreOps, LabelOps):
    """Feature store over one Redis (or a Redis-protocol server such as Valkey)."""
