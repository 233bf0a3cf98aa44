"""A real 3-primary Redis Cluster (services/redis_cluster.py) and the start-up checks
around it: a cluster is named ``redis+cluster://``; a plain ``redis://`` URL of one of
its nodes, a ``redis+cluster://`` URL of a single Redis, and an events topic whose
partitions differ from ``CHURN_PARTITIONS`` are each refused with one clear line before
any process touches the state. The system on the cluster: test_cluster_path.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cli import preflight
from core.settings import Settings
from services.redis_cluster import RedisCluster  # (the fixture: conftest.py)
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration


def test_the_cluster_is_real(cluster: RedisCluster) -> None:
    import redis

    info = cluster.info()
    assert info["cluster_state"] == "ok" and info["cluster_slots_assigned"] == "16384"
    assert info["cluster_known_nodes"] == "3"
    client = redis.Redis.from_url(cluster.url, protocol=2)
    with pytest.raises(redis.exceptions.ResponseError, match=r"^\d+ 127\.0\.0\.1:\d+$"):  # MOVED
        for k in ("a", "b", "c", "d"):  # four keys over three primaries: one is elsewhere
            client.set(k, 1)
    client.close()


def test_a_cluster_node_is_refused_at_start_up(cluster: RedisCluster) -> None:
    with pytest.raises(preflight.StartupError) as err:
        preflight.check_redis(Settings(redis_url=cluster.url, connect_timeout=3.0),
                              tcp_only=True)
    assert "a Redis Cluster node" in err.value.line and "\n" not in err.value.line
    assert "redis+cluster://" in err.value.line
    preflight.check_redis(Settings(redis_url=cluster.url.replace("redis://", "redis+cluster://"),
                                   connect_timeout=3.0), tcp_only=True)  # named as one: fine


def test_a_single_redis_named_as_a_cluster_is_refused(services) -> None:  # type: ignore[no-untyped-def]
    url = services.redis.url.replace("redis://", "redis+cluster://")
    with pytest.raises(preflight.StartupError) as err:
        preflight.check_redis(Settings(redis_url=url, connect_timeout=3.0), tcp_only=True)
    assert "not a Redis Cluster node" in err.value.line


def test_topic_partitions_must_match_on_a_cluster(services, cluster: RedisCluster) -> None:  # type: ignore[no-untyped-def]
    import uuid

    from stream.topics import ensure_topics

    topic = f"events-{uuid.uuid4().hex[:8]}"
    ensure_topics(services.settings(partitions=4, events_topic=topic))
    on = Settings(kafka_bootstrap=services.broker.bootstrap, events_topic=topic,
                  redis_url=cluster.url.replace("redis://", "redis+cluster://"))
    preflight.check_partitions(on.model_copy(update={"partitions": 4}))
    with pytest.raises(preflight.StartupError) as err:
        preflight.check_partitions(on.model_copy(update={"partitions": 32}))
    assert err.value.line == (f"topic {topic} has 4 partitions but CHURN_PARTITIONS=32: on a "
                              "Redis Cluster they must be equal (state/keys.py)")


def test_the_worker_says_so_and_exits(cluster: RedisCluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"PATH": "/usr/bin:/bin", "CHURN_REDIS_URL": cluster.url,
           "CHURN_KAFKA_BOOTSTRAP": "127.0.0.1:1", "CHURN_CONNECT_TIMEOUT": "2",
           "CHURN_ENV_FILE": str(tmp_path / "absent.env")}
    out = subprocess.run([sys.executable, "-m", "cli.main", "fit-value"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "a Redis Cluster node" in out.stderr and "redis+cluster://" in out.stderr, out.stderr
    env["CHURN_REDIS_URL"] = cluster.url.replace("redis://", "redis+cluster://")
    out = subprocess.run([sys.executable, "-m", "cli.main", "fit-value"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0, out.stderr
    assert "churnstream fit-value: fit-value scans a single Redis" in out.stderr, out.stderr
