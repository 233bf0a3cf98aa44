"""The same system on a real 3-primary Redis Cluster (``CHURN_REDIS_URL=redis+cluster://``,
state/keys.py's cluster placement), with 32 partitions and two workers: the exactness,
SIGKILL, Top-K/tier and label-release tests of the single-Redis suite, run unchanged
(the same functions, called with a cluster deployment whose ``start_worker`` starts two
workers: the SIGKILL test kills one of two mid-replay).

The label test's reference knows nothing of the clock guard (docs/design.md section 4:
a jump of a partition's clock waits for a second user): with 32 partitions of 1,100
users a partition often has one user on a day, so the live anchors run later than the
reference's and the examples differ where they should. As in the single-Redis test of
a sparse log (test_labels.py), the guard trusts every record there
(``CHURN_CLOCK_CONFIRM_USERS=1``)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from offline.replay import ReplayReport
from services.redis_cluster import RedisCluster  # (the fixture: conftest.py)
from tests.integration import test_feature_path as single
from tests.integration import test_labels as labels
from tests.integration.conftest import Namespace, http_json, wait_until
from tests.integration.test_scale_workers import _owned

pytestmark = pytest.mark.integration
log = single.log  # the same generated log (a module fixture: generated once here)
PARTITIONS = 32


@dataclass
class TwoWorkers(Namespace):
    """A deployment whose every ``start_worker`` starts two workers (the second returned)."""

    def start_worker(self) -> subprocess.Popen[bytes]:
        self.spawn("worker")
        return self.spawn("worker")


def on_cluster(ns: Namespace, cluster: RedisCluster) -> Namespace:
    ns.extra_env.update({"CHURN_REDIS_URL": cluster.url.replace("redis://", "redis+cluster://"),
                         "CHURN_PARTITIONS": str(PARTITIONS), "CHURN_LOG_LEVEL": "info"})
    return ns


@pytest.fixture(scope="module")
def baseline(services, log, cluster, tmp_path_factory) -> Iterator[tuple[Namespace, ReplayReport]]:  # type: ignore[no-untyped-def]
    """Two workers sharing the 32 partitions, the whole log replayed, the API up."""
    yield from single.replayed(
        on_cluster(TwoWorkers(services, tmp_path_factory.mktemp("cluster")), cluster), log[0])


@pytest.fixture
def cluster_namespace(services, cluster, tmp_path: Path) -> Iterator[Namespace]:  # type: ignore[no-untyped-def]
    ns = on_cluster(TwoWorkers(services, tmp_path), cluster)
    yield ns
    ns.stop()


def test_the_state_is_spread_over_the_primaries(baseline, cluster) -> None:  # type: ignore[no-untyped-def]
    import redis

    ns, _ = baseline
    per_node = []
    for port in cluster.ports:
        r = redis.Redis(port=port, protocol=2)
        per_node.append(sum(1 for _ in r.scan_iter(match=f"t{ns.name}:*:u:*", count=1000)))
        r.close()
    assert sum(per_node) == len(ns.user_hashes()) > 1000
    assert all(n > 100 for n in per_node), per_node  # 32 partitions over 3 primaries
    owned = [o for o, path in zip(_owned(ns), ns.logs, strict=True) if "worker" in path.name]
    assert len(owned) == 2 and owned[0] | owned[1] == set(range(PARTITIONS))
    assert not owned[0] & owned[1] and owned[0] and owned[1]


def test_nothing_lost_nothing_doubled(baseline, log) -> None:  # type: ignore[no-untyped-def]
    single.test_nothing_lost_nothing_doubled(baseline, log)


def test_every_feature_of_every_user(baseline, log) -> None:  # type: ignore[no-untyped-def]
    single.test_every_feature_of_every_user(baseline, log)


def test_the_monthly_picture_equals_the_raw_log(baseline, log) -> None:  # type: ignore[no-untyped-def]
    single.test_the_monthly_picture_equals_the_raw_log(baseline, log)


def test_top_k_and_tiers_match_an_independent_sort(baseline) -> None:  # type: ignore[no-untyped-def]
    single.test_top_k_and_tiers_match_an_independent_sort(baseline)


def test_unknown_user_and_bad_as_of(baseline, log) -> None:  # type: ignore[no-untyped-def]
    single.test_unknown_user_and_bad_as_of(baseline, log)


def test_sigkill_mid_replay_gives_identical_state(baseline, log, cluster_namespace) -> None:  # type: ignore[no-untyped-def]
    single.test_sigkill_mid_replay_gives_identical_state(baseline, log, cluster_namespace)


def test_released_examples_equal_the_reference(cluster_namespace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cluster_namespace.extra_env["CHURN_CLOCK_CONFIRM_USERS"] = "1"  # see the docstring
    labels.test_released_examples_equal_the_reference(cluster_namespace, tmp_path)


def test_a_record_in_a_foreign_partition_is_a_dead_letter(baseline) -> None:  # type: ignore[no-untyped-def]
    """On a cluster a user's state lives in the slot of the partition Kafka's default
    partitioner gives its id; a record of it produced to another partition would be
    stored where no lookup by id looks: it goes to the DLQ, counted, and nothing else
    stops."""
    import json
    import warnings

    from tests.integration.conftest import read_topic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaProducer

    ns, _ = baseline
    keys = ns.keys
    uid = "foreign-user"
    home = keys.partition_of(uid)
    before = ns.stats()
    producer = KafkaProducer(bootstrap_servers=ns.svc.broker.bootstrap)
    event = {"event_id": "f1", "user_id": uid, "event_type": "view",
             "event_time": "2020-03-01T00:00:00Z"}
    producer.send(f"events-{ns.name}", json.dumps(event).encode(), key=uid.encode(),
                  partition=(home + 1) % PARTITIONS)
    producer.send(f"events-{ns.name}", json.dumps({**event, "event_id": "f2"}).encode(),
                  key=uid.encode(), partition=home)
    producer.flush()
    producer.close()
    wait_until(lambda: ns.stats().get("rejected:partition:foreign", 0)
               == before.get("rejected:partition:foreign", 0) + 1, 60, "the foreign record")
    wait_until(lambda: http_json(f"{ns.api_url}/v1/users/{uid}")[0] == 200, 60, "the user")
    dlq = read_topic(ns.svc.broker.bootstrap, f"dlq-{ns.name}", 10**9, timeout=10)
    assert any(json.loads(v)["reason"] == "partition:foreign" for v in dlq)
