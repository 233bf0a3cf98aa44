"""Redis memory per user for two populations, through the real store (state + scores).

    python bench/redis_memory.py

- ``simulate``: the demo simulator's population (20,000 users, first 100,000 events);
- ``testlog``: the exactness test's log (1,100 users, ~41 events each over 65 days,
  with late events and duplicates): heavier users than a typical e-commerce log.
Budget (DESIGN section 6): at most 1 KiB per active user.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.events import Event, Rejected, parse_event  # noqa: E402
from core.features import compute_features  # noqa: E402
from state.codec import Score  # noqa: E402
from state.redis_store import RedisFeatureStore, connect  # noqa: E402
from state.server import RedisServer  # noqa: E402
from state.store import Item  # noqa: E402
from stream import simulate  # noqa: E402
from stream.replay import read_rows, validate_row  # noqa: E402
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


async def measure(name: str, events: list[Event], url: str) -> None:
    store = RedisFeatureStore(connect(url), prefix=name)
    before = int((await store.r.info("memory"))["used_memory"])
    for k in range(0, len(events), 1000):
        items = [Item(e, 0, k + i, True) for i, e in enumerate(events[k:k + 1000])]
        res = await store.apply(items)
        scores = {it.event.user_id: Score(0.5, r.aggregates.now_ms, "rule:recency-frequency")
                  for it, r in zip(items, res, strict=True) if r.aggregates is not None
                  and compute_features(r.aggregates)}
        await store.apply((), (), list(scores.items()))
    after = int((await store.r.info("memory"))["used_memory"])
    users = await store.count_users()
    print(f"{name:>9}: {len(events):>7} events, {users:>6} users, "
          f"{len(events) / users:5.1f} events/user: {(after - before) / users:6.0f} bytes/user")


async def main() -> None:
    server = RedisServer().start()
    try:
        await measure("simulate", simulated(), server.url)
        await measure("testlog", testlog(), server.url)
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
