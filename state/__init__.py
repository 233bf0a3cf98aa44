"""Redis-owned state: key layout, server-side scripts, the feature store behind one
interface (a Redis backend and an in-memory one), the score index, model checkpoints,
customer-value fits, worker heartbeats.

Imports: ``core`` only.
"""
