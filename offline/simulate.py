"""``churnstream simulate``: a synthetic e-commerce population with ground truth.

Deterministic by seed. Users arrive over time (40 % are there on day 0), have
heterogeneous session rates (gamma), a funnel (views, then cart with a personal
propensity, purchase, or removal), a favourite brand with a loyalty, a price level
and a category, and follow weekly and daily seasonality. Each user carries a latent
engagement ``e`` = 1 until a decline starts (a personal hazard, higher for less
active users); then ``e`` decays as exp(-(day - decline) / tau) and the user stops
for good when ``e`` falls below 0.1: that moment is the user's churn time in the
truth file. Declining users come less often, view less, buy less, abandon carts and
stray from their brand. Some users go quiet for a while (7-50 days) and come back.

Events are generated one day at a time as numpy arrays (sessions that run past
midnight are carried into the next day), so a run of any length streams in time
order in constant memory besides the per-user parameters (about 100 bytes a user).

>>> pop = Population(users=50, days=20, seed=3)
>>> lines = list(pop.jsonl())
>>> lines == list(Population(users=50, days=20, seed=3).jsonl())   # same seed, same bytes
True
>>> times = [json.loads(x)["event_time"] for x in lines]
>>> times == sorted(times)
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

DAY_MS = 86_400_000
START_MS = 1_572_566_400_000  # 2019-11-01T00:00:00Z, a Friday
BRANDS = ("acme", "zenith", "nova", "orbit", "lumen", "kappa", "vertex", "halo", "pico", "terra")
CATEGORIES = ("electronics.smartphone", "appliances.kitchen.kettle", "apparel.shoes",
              "computers.notebook", "furniture.living_room.sofa", "kids.toys",
              "sport.bicycle", "accessories.bag")
TYPES = ("view", "cart", "purchase", "remove_from_cart")
WEEKLY = np.array([1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.25])  # Monday .. Sunday
_HOURLY = np.array([2, 1, 1, 1, 1, 2, 3, 5, 6, 6, 6, 6, 7, 6, 6, 6, 6, 7, 8, 9, 9, 8, 6, 4], float)
HOURLY = _HOURLY / _HOURLY.sum()
CHURN_AT = math.log(10)  # stops for good when engagement < 0.1: tau * ln 10 after decline


@dataclass(frozen=True, slots=True)
class Truth:
    """What really happened to a user (times in epoch ms; None: not within the run)."""

    user_id: str
    arrival_ms: int
    decline_ms: int | None
    churn_ms: int | None
    quiet_from_ms: int | None
    quiet_until_ms: int | None
    sessions_per_day: float

    @property
    def churn_day(self) -> int | None:
        return None if self.churn_ms is None else (self.churn_ms - START_MS) // DAY_MS


@dataclass(slots=True)
class Day:
    """One day's events as parallel arrays, in time order."""

    time: np.ndarray
    user: np.ndarray
    kind: np.ndarray
    brand: np.ndarray
    price: np.ndarray
    product: np.ndarray
    session: np.ndarray
    seq0: int  # the first event's sequence number (event ids)


class Simulated:
    """What every simulated profile shares: the users' ids (``u0000000``), the days of
    events (time order) and the truth, and from them the writers below (JSON Lines, the
    public CSV layout, the truth file), so each profile only draws its process."""

    n: int
    days: int
    seed: int
    start_ms: int
    ids: list[str]

    def days_of_events(self) -> Iterator[Day]:
        raise NotImplementedError

    def truth(self) -> Iterator[Any]:
        """One frozen, slotted dataclass per user (:class:`Truth` or a profile's own)."""
        raise NotImplementedError

    def jsonl(self) -> Iterator[bytes]:
        """JSON Lines in the event contract (event_time in epoch ms)."""
        for day in self.days_of_events():
            yield from _day_lines(self, day)

    def csv(self) -> Iterator[bytes]:
        """The public multi-category e-commerce layout (second-resolution UTC times)."""
        import time as _time

        yield (b"event_time,event_type,product_id,category_id,category_code,brand,price,"
               b"user_id,user_session\n")
        ids = self.ids
        for day in self.days_of_events():
            for t, u, ki, b, p, pr, se in zip(
                    day.time.tolist(), day.user.tolist(), day.kind.tolist(),
                    day.brand.tolist(), day.price.tolist(), day.product.tolist(),
                    day.session.tolist(), strict=True):
                stamp = _time.strftime("%Y-%m-%d %H:%M:%S UTC", _time.gmtime(t // 1000))
                cat = pr // 100_000
                yield (f"{stamp},{TYPES[ki]},{pr},{2053013550000000000 + cat},"
                       f"{CATEGORIES[cat]},{BRANDS[b]},{p},{ids[u]},s{se}\n").encode()

    def write_truth(self, path: str) -> int:
        n = 0
        with open(path, "w") as fh:
            for t in self.truth():
                fh.write(json.dumps(_asdict(t)) + "\n")
                n += 1
        return n


class Population(Simulated):
    def __init__(self, users: int = 1000, days: int = 60, seed: int = 7,
                 start_ms: int = START_MS) -> None:
        self.n, self.days, self.seed, self.start_ms = users, days, seed, start_ms
        rng = np.random.default_rng([seed, 0])
        n = users
        present = rng.random(n) < 0.4
        self.arrival = np.where(present, 0.0, rng.uniform(0, days * 0.75, n))
        self.rate = np.clip(rng.gamma(0.9, 0.5, n), 0.03, 6.0)  # sessions per day
        self.cart_p = rng.beta(2, 6, n)
        self.buy_p = rng.beta(3, 4, n)
        self.loyalty = rng.beta(4, 2, n)
        self.fav = rng.integers(0, len(BRANDS), n)
        self.category = rng.integers(0, len(CATEGORIES), n)
        self.price = np.round(np.exp(rng.normal(3.5, 0.7, n)), 2)
        hazard = 0.006 * np.exp(rng.normal(0, 0.5, n)) * (0.45 / self.rate) ** 0.4
        self.decline = self.arrival + 3 + rng.exponential(1.0 / hazard)
        self.tau = rng.uniform(4.0, 16.0, n)
        self.churn = self.decline + self.tau * CHURN_AT
        quiet = rng.random(n) < 0.15
        q_from = self.arrival + 7 + rng.uniform(0, days, n)
        self.q_from = np.where(quiet & (q_from < self.decline), q_from, np.inf)
        self.q_until = self.q_from + rng.uniform(7, 50, n)
        self.ids = [f"u{i:07d}" for i in range(n)]

    def truth(self) -> Iterator[Truth]:
        end = self.days

        def ms(day: float) -> int | None:
            return None if not day < end else self.start_ms + int(day * DAY_MS)

        for i, uid in enumerate(self.ids):
            arrival = ms(float(self.arrival[i]))
            assert arrival is not None
            yield Truth(uid, arrival, ms(float(self.decline[i])), ms(float(self.churn[i])),
                        ms(float(self.q_from[i])), ms(float(self.q_until[i])),
                        round(float(self.rate[i]), 6))

    def days_of_events(self) -> Iterator[Day]:
        rng = np.random.default_rng([self.seed, 1])
        carry: list[np.ndarray] | None = None
        seq = 0
        for d in range(self.days + 1):
            if d < self.days:
                cols = self._day(d, rng)
                if carry is not None:
                    cols = [np.concatenate([a, b]) for a, b in zip(carry, cols, strict=True)]
            elif carry is not None:  # the sessions still running at the end
                cols = carry
            else:
                return
            order = np.argsort(cols[0], kind="stable")
            cols = [c[order] for c in cols]
            cut = len(cols[0]) if d == self.days else int(
                np.searchsorted(cols[0], self.start_ms + (d + 1) * DAY_MS))
            carry = [c[cut:] for c in cols]
            if cut:
                t, u, k, b, p, pr, se = (c[:cut] for c in cols)
                yield Day(t, u, k, b, p, pr, se, seq0=seq)
                seq += cut

    def _day(self, d: int, rng: np.random.Generator) -> list[np.ndarray]:
        alive = (self.arrival <= d + 1) & (d < self.churn) & ~(
            (self.q_from <= d) & (d < self.q_until))
        e = np.exp(-np.maximum(d - self.decline, 0.0) / self.tau)  # 1 before the decline
        weekday = (d + (self.start_ms // DAY_MS + 3)) % 7  # 1970-01-01 was a Thursday
        part = np.clip(np.where(self.arrival > d, d + 1 - self.arrival, 1.0), 0.0, 1.0)
        lam = np.where(alive, self.rate * e * WEEKLY[weekday] * part, 0.0)
        counts = rng.poisson(lam)
        users = np.repeat(np.flatnonzero(counts), counts[counts > 0])
        s = len(users)
        ee = e[users]
        t0 = self.start_ms + d * DAY_MS + rng.choice(24, s, p=HOURLY) * 3_600_000 \
            + rng.integers(0, 3_600_000, s)
        # a session that starts before the arrival moves to it (the first visit)
        t0 = np.maximum(t0, self.start_ms + (self.arrival[users] * DAY_MS).astype(np.int64))
        views = np.minimum(rng.geometric(1.0 / (1.0 + 2.5 * ee)), 20)
        cart = rng.random(s) < self.cart_p[users] * (0.4 + 0.6 * ee)
        buy = cart & (rng.random(s) < self.buy_p[users] * np.sqrt(ee))
        remove = cart & ~buy & (rng.random(s) < 0.35 + 0.3 * (1 - ee))
        n_ev = views + cart + buy + remove
        m = int(n_ev.sum())
        sess = np.repeat(np.arange(s), n_ev)
        first = np.cumsum(n_ev) - n_ev  # index of each session's first event
        pos = np.arange(m) - first[sess]
        v = views[sess]
        kind = np.where(pos < v, 0, np.where(pos == v, 1, np.where(buy[sess], 2, 3)))
        kind = np.where((pos == v + 1) & ~buy[sess], 3, kind).astype(np.int8)
        gaps = rng.integers(5_000, 240_000, m)
        gaps[first] = 0
        elapsed = np.cumsum(gaps)
        time = t0[sess] + elapsed - elapsed[first][sess]
        uidx = users[sess]
        loyal = rng.random(m) < self.loyalty[uidx] * (0.3 + 0.7 * ee[sess])
        brand = np.where(loyal, self.fav[uidx], rng.integers(0, len(BRANDS), m))
        price = np.round(self.price[uidx] * np.exp(rng.normal(0, 0.25, m)), 2)
        product = self.category[uidx] * 100_000 + brand * 1_000 + rng.integers(0, 1_000, m)
        session = (d * 10_000_000 + np.arange(s))[sess]
        return [time, uidx, kind, brand, price, product, session]


def _asdict(t: Any) -> dict[str, object]:
    return {f: getattr(t, f) for f in type(t).__slots__}


def _day_lines(pop: Simulated, day: Day) -> Iterator[bytes]:
    ids = pop.ids
    for k, (t, u, ki, b, p, pr, se) in enumerate(zip(
            day.time.tolist(), day.user.tolist(), day.kind.tolist(), day.brand.tolist(),
            day.price.tolist(), day.product.tolist(), day.session.tolist(), strict=True)):
        yield (f'{{"event_id":"e{day.seq0 + k}","user_id":"{ids[u]}","event_type":'
               f'"{TYPES[ki]}","event_time":{t},"price":{p},"brand":"{BRANDS[b]}",'
               f'"product_id":"{pr}","category_code":"{CATEGORIES[pr // 100_000]}",'
               f'"session_id":"s{se}"}}\n').encode()


def paced(pop: Simulated, speedup: float) -> Iterator[bytes]:
    """JSON lines released in step with the wall clock, event time running ``speedup``
    times faster (a day of traffic in 86.4 s at 1000x): demos that look live."""
    import time as _time

    started = _time.monotonic()
    for day in pop.days_of_events():
        for line, t in zip(_day_lines(pop, day), day.time.tolist(), strict=True):
            wait = (t - pop.start_ms) / 1000 / speedup - (_time.monotonic() - started)
            if wait > 0.005:
                _time.sleep(wait)
            yield line


def events(users: int = 1000, days: int = 60, seed: int = 7) -> Iterator[dict[str, object]]:
    """Events as dicts, in time order (for tests and small runs)."""
    for line in Population(users, days, seed).jsonl():
        yield json.loads(line)


def to_jsonl(evs: Iterator[dict[str, object]]) -> Iterator[bytes]:
    for ev in evs:
        yield json.dumps(ev, separators=(",", ":")).encode() + b"\n"
