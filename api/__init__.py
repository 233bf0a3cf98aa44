"""HTTP (FastAPI). Stateless: reads Redis through ``state``; writes only through Kafka.

Imports: ``core``, ``state``.
"""
