"""Kafka and faust: topics, the stream worker, replay, simulator, embedded services, CLI."""
