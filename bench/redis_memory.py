"""Redis memory per user for two populations, through the worker's batch path, on a
single Redis and on a 3-primary Redis Cluster (32 partitions; memory summed over the
primaries), in one run.

    python bench/redis_memory.py [--no-cluster]

- ``simulate``: the demo simulator's population (20,000 users, first 100,000 events);
- ``testlog``: the exactness test's log (1,100 users, ~41 events each over 65 days,
  with late events and duplicates): heavier users than a typical e-commerce log.
Budget (docs/design.md section 6): at most 1 KiB per active user.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.events import Event, Rejected, parse_event  # noqa: E402
from core.settings import Settings  # noqa: E402
from offline import simulate  # noqa: E402
from offline.replay import read_rows, validate_row  # noqa: E402
from services.redis_cluster import RedisCluster  # noqa: E402
from services.redis_server import RedisServer  # noqa: E402
from state.redis_store import RedisFeatureStore, connect  # noqa: E402
from state.value_model import ValueModel  # noqa: E402
from stream.anchors import Anchors  # noqa: E402
from stream.worker.live import Live  # noqa: E402
from stream.worker.processor import BatchProcessor, Record  # noqa: E402
from tests.datagen import generate, write_csv  # noqa: E402


def simulated() -> list[Event]:
    out = []
    for ev, _ in zip(simulate.events(users=20_000, days=120, seed=11), range(100_000),
                     strict=False):
        parsed = parse_event(json.dumps(ev).encode())
        assert isinstance(parsed, Event)
        out.append(parsed)
    return out


def testlog() -> list[Event]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.csv"
        write_csv(generate(users=1100, days=65, seed=1), str(path))
        allowed = frozenset({"view", "cart", "remove_from_cart", "purchase"})
        out = []
        for _line, payload, _reason in read_rows(path):
            ev = validate_row(payload, allowed) if payload is not None else None
            if ev is not None and not isinstance(ev, Rejected):
                out.append(ev)
        return out


async def used_memory(store: RedisFeatureStore) -> int:
    info = await store.r.info("memory")
    if "used_memory" in info:
        return int(info["used_memory"])
    return sum(int(node["used_memory"]) for node in info.values())  # a cluster: per node


async def measure(name: str, events: list[Event], url: str) -> None:
    """Everything the worker keeps: user hashes (state, score with reasons, tier), the
    rank and active indexes, pending label snapshots at the default sample rate."""
    store = RedisFeatureStore(connect(url), prefix=name, partitions=32)
    keys = store.keys
    before = await used_memory(store)
    settings = Settings()

    async def nowhere(messages: Sequence[object]) -> None:
        pass

    live = Live.from_settings(store, nowhere, settings)
    proc = BatchProcessor(store, nowhere, live=live,
                          anchors=Anchors(store, nowhere, settings.churn_horizon_days,
                                          settings.label_sample_rate,
                                          # as the worker: snapshots carry the BG/NBD inputs
                                          value=ValueModel(None, settings.churn_horizon_days)))
    for k in range(0, len(events), 1000):
        await proc.process([Record(keys.partition_of(e.user_id) if keys.cluster else 0,
                                   k + i, None, e.to_json())
                            for i, e in enumerate(events[k:k + 1000])])
    after = await used_memory(store)
    users = await store.count_users()
    pending = 0
    pattern = f"{name}:{{{name}:p*}}:pending:*" if keys.cluster else f"{name}:pending:*"
    async for key in store.r.scan_iter(match=pattern):
        pending += int(await store.r.hlen(key))
    where = "cluster" if keys.cluster else "single"
    print(f"{where:>7} {name:>9}: {len(events):>7} events, {users:>6} users, "
          f"{len(events) / users:5.1f} events/user, {pending:>6} pending snapshots: "
          f"{(after - before) / users:6.0f} bytes/user")


async def main() -> None:
    server = RedisServer().start()
    try:
        await measure("simulate", simulated(), server.url)
        await measure("testlog", testlog(), server.url)
    finally:
        server.stop()
    if "--no-cluster" in sys.argv:
        return
    cluster = RedisCluster(3).start()
    try:
        url = cluster.url.replace("redis://", "redis+cluster://")
        await measure("simulate", simulated(), url)
        await measure("testlog", testlog(), url)
    finally:
        cluster.stop()


if __name__ == "__main__":
    asyncio.run(main())
