"""Redis-owned state, by concern.

- the feature-store interface: :mod:`state.store` (one test suite runs it over both
  backends); the in-memory backend: :mod:`state.memory_store`;
- the Redis backend: :mod:`state.redis_store` (``RedisFeatureStore``) over
  :mod:`state.redis_base` (connection, keys, scripts), by concern: per-user state
  (:mod:`state.redis_events`), scores and tiers (:mod:`state.redis_scores`), labels and
  clocks (:mod:`state.redis_labels`);
- storage encoding: :mod:`state.keys` (key layout), :mod:`state.codec` (bytes), the Lua
  scripts in ``state/lua/`` with their one loader :mod:`state.scripts`;
- connections: ``state/clients/`` (the hot path's RESP connection, the API's
  multiplexed one);
- model checkpoints (:mod:`state.models`), customer-value fits (:mod:`state.value_store`,
  :mod:`state.value_rows`, the fits a worker serves: :mod:`state.value_model`), worker
  heartbeats (:mod:`state.workers`), the state epoch (:mod:`state.epoch`).

Imports: ``core`` only.
"""
