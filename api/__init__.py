"""HTTP read path (FastAPI). Stateless: reads Redis; writes only through Kafka."""
