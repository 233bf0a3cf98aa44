"""What the overview's streaming monthly counters cost the worker per event.

    python bench/months_overhead.py [--users 20000] [--events-per-user 8] [--rounds 5]

The worker's batch path (``RedisFeatureStore.apply`` then ``Live.rescore``, as
bench/sweep_throughput.py's ``fill``: real Redis, rule scores, tiers) over the same
events, once with the real ``apply_event`` script and once with a copy whose monthly
block (the user's marks and the month counters, state/lua/months.lua) is cut out; the
two run batch by batch in alternating order, each on its own fresh key prefix, so the
machine's noise falls on both alike. Events are spread so that most are
their user's first of a UTC day (the only events that touch the months: the worst case).
Prints the wall time, this process's CPU and Redis's CPU per event for both, and the
median ratio with / without.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.events import Event  # noqa: E402
from core.settings import Settings  # noqa: E402
from services.redis_server import RedisServer  # noqa: E402
from state.redis_store import RedisFeatureStore, connect  # noqa: E402
from state.scripts import SCRIPTS  # noqa: E402
from state.store import Item  # noqa: E402
from stream.worker.live import Live  # noqa: E402

DAY = 86_400_000
MONTHS_READ = "'v', 'mo')"  # the marks, read with the user's other fields
T0 = 18_300 * DAY
MONTHS_BLOCK = "if not d then  -- the user's first counted event of the day: their month may be new"


def events(users: int, per_user: int) -> list[Item]:
    rng = random.Random(1)
    out = []
    for k in range(per_user):  # in time order: day k * 10 + jitter, ~80 days
        for u in range(users):
            t = T0 + (k * 10 + rng.randrange(10)) * DAY + rng.randrange(DAY)
            ev = Event(event_id=f"{u}-{k}", user_id=f"user{u:07d}",
                       event_type=rng.choice(["view", "view", "cart", "purchase"]),
                       event_time=t, price=round(rng.uniform(1, 200), 2),
                       brand=rng.choice(["acme", "zenith", "nova"]))
            out.append(Item(ev, 0, len(out), True))
    return out


async def redis_cpu(store: RedisFeatureStore) -> float:
    info = await store.r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def variant(client: object, prefix: str, months: bool) -> tuple[RedisFeatureStore, Live]:
    store = RedisFeatureStore(client, prefix)
    await store.apply([])  # loads the scripts
    if not months:
        assert MONTHS_BLOCK in SCRIPTS["apply_event"]
        assert MONTHS_READ in SCRIPTS["apply_event"]
        cut = SCRIPTS["apply_event"].replace(MONTHS_BLOCK, "if false then").replace(
            MONTHS_READ, "'v')")
        sha = await store.r.script_load(cut)
        store._shas["apply_event"] = sha.decode() if isinstance(sha, bytes) else sha

    async def nowhere(messages: object) -> None:
        pass

    return store, Live.from_settings(store, nowhere, Settings())  # type: ignore[arg-type]


async def one_round(client: object, r: int, items: list[Item]) -> dict[bool, tuple[float, ...]]:
    """Both variants over the same events, batch by batch in alternating order (the
    machine's noise then falls on both alike): wall, worker CPU, Redis CPU (us/event)."""
    runs = {m: await variant(client, f"b{r}{int(m)}", m) for m in (True, False)}
    acc = {m: [0.0, 0.0, 0.0] for m in runs}
    for k in range(0, len(items), 4000):
        batch = items[k:k + 4000]
        for months in ((True, False) if (k // 4000 + r) % 2 == 0 else (False, True)):
            store, live = runs[months]
            r0, c0, t0 = await redis_cpu(store), time.process_time(), time.perf_counter()
            res = await store.apply(batch)
            await live.rescore([(it.event.user_id, 0, x.aggregates) for it, x
                                in zip(batch, res, strict=True) if x.aggregates is not None])
            a = acc[months]
            a[0] += time.perf_counter() - t0
            a[1] += time.process_time() - c0
            a[2] += await redis_cpu(store) - r0
    for months, (store, _) in runs.items():
        counters = await store.months()
        assert bool(counters) == months, "the cut script must write no month counters"
    await client.flushdb()  # type: ignore[attr-defined]
    return {m: tuple(x / len(items) * 1e6 for x in a) for m, a in acc.items()}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--events-per-user", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    items = events(args.users, args.events_per_user)
    server = RedisServer().start()
    try:
        client = connect(server.url)
        res: dict[bool, list[tuple[float, ...]]] = {True: [], False: []}
        for r in range(args.rounds):
            got = await one_round(client, r, items)
            for months in (True, False):
                res[months].append(got[months])
                w, c, rc = got[months]
                print(f"round {r} {'with' if months else 'without'} months: {w:6.1f} us/event "
                      f"wall, {c:6.1f} us worker CPU, {rc:6.1f} us Redis CPU", flush=True)
        for i, what in enumerate(("wall", "worker CPU", "Redis CPU")):
            ratios = [a[i] / b[i] for a, b in zip(res[True], res[False], strict=True)]
            print(f"{what} per event, with / without the monthly counters: median ratio "
                  f"{statistics.median(ratios):.3f} (rounds: "
                  f"{', '.join(f'{x:.3f}' for x in ratios)}; {len(items)} events)")
        both = [(a[1] + a[2]) / (b[1] + b[2]) for a, b in zip(res[True], res[False], strict=True)]
        print(f"worker + Redis CPU per event, with / without: median ratio "
              f"{statistics.median(both):.3f}")
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
