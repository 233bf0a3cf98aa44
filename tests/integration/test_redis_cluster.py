"""A real 3-primary Redis Cluster (services/redis_cluster.py): pointing churnstream at
one of its nodes is refused at start-up with one clear line, before any process touches
it (the state needs a single primary until the cluster layout of issue 17 exists)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from cli import preflight
from core.settings import Settings
from services.redis_cluster import RedisCluster
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    c = RedisCluster(3).start()
    try:
        yield c
    finally:
        c.stop()


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


def test_the_worker_says_so_and_exits(cluster: RedisCluster, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"PATH": "/usr/bin:/bin", "CHURN_REDIS_URL": cluster.url,
           "CHURN_KAFKA_BOOTSTRAP": "127.0.0.1:1", "CHURN_CONNECT_TIMEOUT": "2",
           "CHURN_ENV_FILE": str(tmp_path / "absent.env")}
    out = subprocess.run([sys.executable, "-m", "cli.main", "fit-value"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "a Redis Cluster node" in out.stderr, out.stderr
