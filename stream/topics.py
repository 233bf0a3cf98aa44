"""Create the topics explicitly (Tansu auto-creates missing topics with 4 partitions)."""

from __future__ import annotations

import logging
import time
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

import contextlib

from core.settings import Settings

log = logging.getLogger(__name__)


def topic_specs(settings: Settings) -> dict[str, int]:
    """Topic name -> partition count."""
    return {settings.events_topic: settings.partitions, settings.dlq_topic: 1,
            settings.training_topic: 1,  # one partition: the learner sees one total order
            settings.alerts_topic: settings.partitions}  # key = user id: per-user order


def ensure_topics(settings: Settings, timeout: float = 30.0) -> None:
    """Create missing topics; retries while the broker is still starting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                                     client_id="churnstream-admin", request_timeout_ms=10000)
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(name, n, 1) for name, n in topic_specs(settings).items()
               if name not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
            log.info("created topics %s", [t.name for t in new])
    finally:
        admin.close()


def partition_count(settings: Settings, topic: str) -> int | None:
    """Partitions of ``topic`` on the broker (None: no such topic)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap,
                             client_id="churnstream-admin", request_timeout_ms=10000)
    try:
        for t in admin.describe_topics([topic]):
            if t.get("topic", t.get("name")) == topic and not t.get("error_code"):
                return len(t["partitions"])
        return None
    finally:
        admin.close()
