"""Redis-owned state: key layout, server-side scripts, feature store, embedded server."""
