"""Partition claims fence the writes of a worker that lost a partition in a rebalance
(state/epoch.py), on a single Redis and on a real 3-primary Redis Cluster: once another
worker has claimed partition p, every guarded write of the old owner to p (events and
their commit, scores, tiers, label snapshots, anchors, retirement) is refused whole,
with nothing applied, while its writes to partitions it still owns go on."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from core.events import Event
from core.tiers import TierRecord
from services.embedded import EmbeddedServices
from services.redis_cluster import RedisCluster  # (the fixture: conftest.py)
from state.clients.resp import Fenced
from state.codec import Score
from state.epoch import Epochs, claim, install_guard
from state.redis_store import RedisFeatureStore, connect
from state.store import Commit, Item, ScoreWrite, TierChange

pytestmark = pytest.mark.integration
T0 = 1_600_000_000_000
_LOOP = asyncio.new_event_loop()


def run(coro: Any) -> Any:
    return _LOOP.run_until_complete(coro)


@pytest.fixture(params=["single", "cluster"])
def url(request: pytest.FixtureRequest, services: EmbeddedServices) -> str:
    if request.param == "single":
        return services.redis.url
    c: RedisCluster = request.getfixturevalue("cluster")
    return c.url.replace("redis://", "redis+cluster://")


def _user_of(store: RedisFeatureStore, partition: int) -> str:
    """A user id whose home partition (Kafka's default partitioner) is ``partition``."""
    i = 1000 * partition
    while store.keys.cluster and store.keys.partition_of(f"u{i}") != partition:
        i += 1
    return f"u{i}"


def _batch(user: str, p: int, off: int) -> tuple[list[Item], list[Commit]]:
    ev = Event(event_id=f"{user}-{off}", user_id=user, event_type="view",
               event_time=T0 + off * 1000)
    return [Item(ev, p, off, True)], [Commit(p, off, T0 + off * 1000, {}, None, off - 1)]


def test_a_worker_that_lost_a_partition_writes_nothing_to_it(url: str) -> None:
    prefix = f"f{uuid.uuid4().hex[:8]}"
    old, new = (RedisFeatureStore(connect(url), prefix, partitions=2) for _ in range(2))
    epoch = run(Epochs(old.r, old.keys).ensure())
    install_guard(old.hot, old.keys, epoch, b"old")
    install_guard(new.hot, new.keys, epoch, b"new")
    u0, u1 = _user_of(old, 0), _user_of(old, 1)
    run(claim(old.r, old.keys, [0, 1], b"old"))
    run(old.apply(*_batch(u0, 0, 0)))
    run(old.apply(*_batch(u1, 1, 0)))
    before = (run(old.applied_offsets()), run(old.stats()), run(old.user(u0)))

    run(claim(new.r, new.keys, [0], b"new"))  # a rebalance moved partition 0
    fenced = [
        old.apply(*_batch(u0, 0, 1)),
        old.write_scores([ScoreWrite(u0, 0, Score(0.9, T0 + 5000, "rule"), T0)]),
        old.write_tiers([TierChange(u0, 0, None, TierRecord(1, T0, 0, 0), T0)], {"x": 1}),
        old.put_snapshots(0, T0, [(u0, [1.0] * 17)]),
        old.finish_anchor(0, T0, T0 - 1, {"snapshots": 1}),
    ]
    for write in fenced:
        with pytest.raises(Fenced) as err:
            run(write)
        assert err.value.partition == 0
    assert (run(old.applied_offsets()), run(old.stats()), run(old.user(u0))) == before
    assert run(old.top(0, 10)) == [] and run(old.tier_counts()) == {}
    assert run(old.snapshots(0, T0)) == [] and "a:0" not in run(old.clock())

    run(old.apply(*_batch(u1, 1, 1)))  # the partition it still owns: written
    run(new.apply(*_batch(u0, 0, 1)))  # the new owner: written
    assert run(old.applied_offsets()) == {0: 1, 1: 1}
    assert run(old.stats())["applied"] == 4, run(old.stats())
    for store in (old, new):
        run(store.close())
