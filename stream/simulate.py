"""``churnstream simulate``: a synthetic e-commerce population (deterministic by seed).

Users arrive over time with heterogeneous activity rates, browse in sessions
(view -> cart -> purchase funnel), prefer a brand and a price level, and some
stop for good at a recorded churn day. Events are generated one day at a time,
so output size is not bounded by memory. Issue 5 grows this into the full
ground-truth simulator; this version feeds the demo and the benchmarks.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

DAY_MS = 86_400_000
BRANDS = ("acme", "zenith", "nova", "orbit", "lumen", "kappa", "vertex", "halo", "pico", "terra")
START_MS = 1_572_566_400_000  # 2019-11-01T00:00:00Z


@dataclass(slots=True)
class SimUser:
    user_id: str
    start_day: int
    rate: float  # sessions per day
    brand: str
    price: float
    churn_day: int | None


def make_users(n: int, days: int, rng: random.Random, churn_share: float = 0.3) -> list[SimUser]:
    users = []
    for i in range(n):
        start = int(rng.random() * days * 0.5)
        churn = start + int(rng.expovariate(1 / 30)) + 3 if rng.random() < churn_share else None
        users.append(SimUser(f"u{i:07d}", start, math.exp(rng.gauss(-1.2, 0.8)),
                             rng.choice(BRANDS), round(math.exp(rng.gauss(3.5, 0.7)), 2),
                             churn if churn is not None and churn < days else None))
    return users


def events(users: int = 1000, days: int = 60, seed: int = 7,
           start_ms: int = START_MS) -> Iterator[dict[str, object]]:
    """Events in time order, one simulated day at a time."""
    rng = random.Random(seed)
    pop = make_users(users, days, rng)
    seq = 0
    for day in range(days):
        todays: list[tuple[int, dict[str, object]]] = []
        weekday_boost = 1.3 if (day % 7) in (5, 6) else 1.0
        for u in pop:
            if day < u.start_day or (u.churn_day is not None and day >= u.churn_day):
                continue
            fade = 1.0
            if u.churn_day is not None:  # engagement decays before the user leaves
                fade = min(1.0, (u.churn_day - day) / 14)
            n_sessions = _poisson(rng, u.rate * weekday_boost * fade)
            for _ in range(n_sessions):
                t = start_ms + day * DAY_MS + rng.randrange(DAY_MS - 3_600_000)
                session = f"s{seq}"
                for typ in _funnel(rng):
                    seq += 1
                    brand = u.brand if rng.random() < 0.7 else rng.choice(BRANDS)
                    price = round(u.price * math.exp(rng.gauss(0, 0.3)), 2)
                    todays.append((t, {"event_id": f"e{seq}", "user_id": u.user_id,
                                       "event_type": typ, "event_time": t, "price": price,
                                       "brand": brand, "product_id": str(rng.randrange(5000)),
                                       "session_id": session}))
                    t += rng.randrange(5_000, 300_000)
        todays.sort(key=lambda x: x[0])
        for _, ev in todays:
            yield ev


def _poisson(rng: random.Random, lam: float) -> int:
    n, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return n
        n += 1


def _funnel(rng: random.Random) -> list[str]:
    out = ["view"] * (1 + int(rng.expovariate(1 / 3)))
    if rng.random() < 0.3:
        out.append("cart")
        if rng.random() < 0.5:
            out.append("purchase")
        elif rng.random() < 0.3:
            out.append("remove_from_cart")
    return out


def to_jsonl(evs: Iterator[dict[str, object]]) -> Iterator[bytes]:
    for ev in evs:
        yield json.dumps(ev, separators=(",", ":")).encode() + b"\n"
