"""Cost of the state-epoch guard (WATCH + check script before each MULTI/EXEC).

    python bench/guard_overhead.py

One real redis-server; batches of 1,000 events applied through the worker's store,
unguarded and guarded in alternating rounds (20 rounds of 3 batches each); medians.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.events import Event
from services.redis_server import RedisServer
from state.epoch import Epochs, guard_commands
from state.redis_store import RedisFeatureStore, connect
from state.store import Commit, Item

T0 = 1_575_000_000_000


def _batch(k: int) -> list[Item]:
    return [Item(Event(event_id=f"e{k}-{i}", user_id=f"u{i % 500}", event_type="view",
                       event_time=T0 + k * 60_000 + i), 0, k * 1000 + i, i % 2 == 0)
            for i in range(1000)]


async def main(rounds: int = 20) -> None:
    server = RedisServer().start()
    try:
        store = RedisFeatureStore(connect(server.url), "bench")
        await store.load_scripts()
        epoch = await Epochs(store.r, store.keys).ensure()
        times: dict[str, list[float]] = {"unguarded": [], "guarded": []}
        k = 0
        for rnd in range(rounds):
            for mode in (("unguarded", "guarded") if rnd % 2 else ("guarded", "unguarded")):
                store.hot.guard = (guard_commands(store.keys, epoch, b"bench")
                                   if mode == "guarded" else None)
                for _ in range(3):
                    items = _batch(k)
                    k += 1
                    started = time.perf_counter()
                    await store.apply(items, [Commit(0, items[-1].offset,
                                                     items[-1].event.time_ms, {})])
                    times[mode].append(time.perf_counter() - started)
        plain, guarded = (statistics.median(times[m]) for m in ("unguarded", "guarded"))
        print(f"1,000-event batch: unguarded {plain * 1000:.2f} ms, guarded "
              f"{guarded * 1000:.2f} ms (median of {len(times['guarded'])}); ratio "
              f"{guarded / plain:.3f}")
        await store.close()
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
