"""Dict-backed :class:`~state.store.FeatureStore` with the exact semantics of the Redis
scripts: offline evaluation and unit tests use it; one test suite runs it against Redis."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from core.apply import DUPLICATE, REDELIVERED, STATUS_NAMES, MemoryUser, apply_event
from core.features import FEATURE_NAMES, HORIZON_DAYS, Aggregates, UserState, window_aggregates
from core.model import REASON_NAMES
from core.tiers import ALL_TIERS, CHURNED, Crossing, TierRecord
from state.codec import Score, retired_key
from state.store import (
    FEED,
    HISTORY,
    Applied,
    Commit,
    Item,
    Placed,
    ScoreWrite,
    StaleBatch,
    TierChange,
    UserView,
    population_means,
)


class MemoryFeatureStore:
    def __init__(self, horizon_days: int = HORIZON_DAYS) -> None:
        self.horizon_days = horizon_days
        self.users: dict[str, MemoryUser] = {}
        self.scores: dict[str, Score] = {}
        self.ranked: dict[str, float] = {}
        self.tiers: dict[str, TierRecord] = {}
        self.active: dict[int, dict[str, int]] = {}
        self.gone: dict[int, dict[str, int]] = {}
        self.pending: dict[tuple[int, int], dict[str, list[float]]] = {}
        self.pop: dict[int, tuple[int, int, list[float]]] = {}
        self.retired: dict[str, int] = {}  # "x:t_x:first day" -> retired customers
        self._offsets: dict[int, int] = {}
        self._stats: dict[str, int] = {}
        self._wm: dict[int, int] = {}
        self._unconfirmed: dict[int, str] = {}
        self._clock: dict[str, int] = {}
        self._tier_counts: dict[str, int] = {}
        self._months: dict[str, int] = {}  # the monthly figures (core/monthly.py)
        self.history: dict[str, list[Crossing]] = {}  # user -> newest crossings
        self.feed: deque[Crossing] = deque(maxlen=FEED)

    def _count(self, name: str, inc: int = 1) -> None:
        self._stats[name] = self._stats.get(name, 0) + inc

    async def applied_offsets(self) -> dict[int, int]:
        return dict(self._offsets)

    async def apply(self, items: Sequence[Item], commits: Sequence[Commit] = ()) -> list[Applied]:
        stale = any(c.expected != -2 and self._offsets.get(c.partition, -1) > c.expected
                    for c in commits)
        out = []
        for it in items:
            status = apply_event(self.users, it.event, it.partition, it.offset, self.horizon_days,
                                 self._months)
            if status != REDELIVERED:
                self._count(STATUS_NAMES[status])
                if status != DUPLICATE:
                    self._count("type:" + it.event.event_type)
            mu = self.users.get(it.event.user_id)
            agg = None
            if it.want_state and mu:
                score = self.scores.get(it.event.user_id)
                now = max(mu.state.last_ms, score.as_of_ms if score else mu.state.last_ms)
                agg = window_aggregates(mu.state, now)
            out.append(Applied(status, agg))
        if stale:  # as the Redis transaction: the events applied, the commits refused
            raise StaleBatch("another worker committed a partition of this batch meanwhile")
        for c in commits:
            if c.last_offset <= self._offsets.get(c.partition, -1):
                continue
            self._offsets[c.partition] = c.last_offset
            for name, inc in c.counters.items():
                self._count(name, inc)
            if c.watermark_ms > self._wm.get(c.partition, -1):
                self._wm[c.partition] = c.watermark_ms
            if c.unconfirmed is not None:
                self._unconfirmed[c.partition] = c.unconfirmed
        return out

    async def write_scores(self, writes: Sequence[ScoreWrite]) -> list[Placed]:
        out = []
        for w in writes:
            old = self.scores.get(w.user_id)
            tier = self.tiers.get(w.user_id)
            if old is not None and old.as_of_ms > w.score.as_of_ms:
                out.append(Placed(False, -1, 0, tier))
                continue
            self.scores[w.user_id] = w.score
            if w.churned:
                self.ranked.pop(w.user_id, None)
                self.active.get(w.partition, {}).pop(w.user_id, None)
                out.append(Placed(True, -1, len(self.ranked), tier))
                continue
            self.ranked[w.user_id] = w.score.risk
            if w.reindex:
                self.active.setdefault(w.partition, {})[w.user_id] = w.last_ms
            rank = sum(1 for u, r in self.ranked.items()
                       if (r, u.encode()) > (w.score.risk, w.user_id.encode()))
            out.append(Placed(True, rank, len(self.ranked), tier))
        return out

    async def write_tiers(self, changes: Sequence[TierChange], counters: dict[str, int]) -> None:
        for c in changes:
            if c.crossing is not None:
                mine = self.history.setdefault(c.user_id, [])
                mine.append(c.crossing)
                del mine[:-HISTORY]
                self.feed.append(c.crossing)
            self.tiers[c.user_id] = c.record
            to = ALL_TIERS[c.record.tier]
            if c.old is not None:
                frm = ALL_TIERS[c.old]
                self._tier_counts[frm] = self._tier_counts.get(frm, 0) - 1
                if frm == CHURNED:
                    self.gone.get(c.partition, {}).pop(c.user_id, None)
            self._tier_counts[to] = self._tier_counts.get(to, 0) + 1
            if to == CHURNED:
                self.ranked.pop(c.user_id, None)
                self.active.get(c.partition, {}).pop(c.user_id, None)
                self.gone.setdefault(c.partition, {})[c.user_id] = c.last_ms
        for name, inc in counters.items():
            self._count(name, inc)

    async def alerts_feed(self, count: int, to: str | None = None) -> list[Crossing]:
        want = ALL_TIERS.index(to) if to is not None else None
        return [c for c in reversed(self.feed) if want is None or c.to == want][:count]

    async def aggregates_at(self, user_ids: Sequence[str], now_ms: int,
                            partition: int | None = None) -> list[Aggregates | None]:
        return [window_aggregates(self.users[u].state, now_ms) if u in self.users else None
                for u in user_ids]

    async def active_users(self, partition: int, after_ms: float, until_ms: float
                           ) -> list[tuple[str, int]]:
        return sorted(((u, t) for u, t in self.active.get(partition, {}).items()
                       if after_ms < t <= until_ms), key=lambda ut: (ut[1], ut[0].encode()))

    async def last_events(self, user_ids: Sequence[str],
                          partition: int | None = None) -> list[int | None]:
        return [self.users[u].state.last_ms if u in self.users else None for u in user_ids]

    async def clock(self) -> dict[str, int]:
        return dict(self._clock)

    async def set_clock(self, name: str, value_ms: int) -> None:
        self._clock[name] = max(value_ms, self._clock.get(name, value_ms))

    async def put_snapshots(self, partition: int, anchor_ms: int,
                            rows: Sequence[tuple[str, Sequence[float]]]) -> None:
        book = self.pending.setdefault((partition, anchor_ms), {})
        sums = [0.0] * (len(rows[0][1]) if rows else len(FEATURE_NAMES))
        for uid, feats in rows:
            book[uid] = list(feats)
            sums = [s + f for s, f in zip(sums, feats, strict=True)]
        self.pop[partition] = (anchor_ms, len(rows), sums)

    async def snapshots(self, partition: int, anchor_ms: int) -> list[tuple[str, list[float]]]:
        return sorted(self.pending.get((partition, anchor_ms), {}).items())

    async def finish_anchor(self, partition: int, anchor_ms: int, released_anchor_ms: int,
                            counters: dict[str, int]) -> None:
        self.pending.pop((partition, released_anchor_ms), None)
        await self.set_clock(f"a:{partition}", anchor_ms)
        for name, inc in counters.items():
            self._count(name, inc)

    async def population(self) -> tuple[int, dict[str, float]]:
        return population_means((n, sums) for _, n, sums in self.pop.values())

    async def tier_of(self, user_id: str) -> TierRecord | None:
        return self.tiers.get(user_id)

    async def tier_counts(self) -> dict[str, int]:
        return {t: n for t, n in self._tier_counts.items() if n}

    async def retire(self, partition: int, silent_before_ms: int) -> int:
        gone = self.gone.get(partition, {})
        old = [u for u, t in gone.items() if t < silent_before_ms]
        for u in old:
            del gone[u]
            mu = self.users.pop(u, None)
            field = retired_key(mu.state.purchase_days) if mu is not None else None
            if field is not None:
                self.retired[field] = self.retired.get(field, 0) + 1
            self.scores.pop(u, None)
            self.tiers.pop(u, None)
            self.history.pop(u, None)
            self._tier_counts[CHURNED] -= 1
        if old:
            self._count("users_retired", len(old))
        return len(old)

    async def retired_customers(self) -> dict[str, int]:
        return dict(self.retired)

    async def user_view(self, user_id: str) -> UserView | None:
        mu = self.users.get(user_id)
        if mu is None:
            return None
        ranked = await self.rank_of(user_id)
        return UserView(mu.state, self.scores.get(user_id), self.tiers.get(user_id),
                        ranked[0] if ranked else None, len(self.ranked),
                        (await self.population())[1], tuple(self.history.get(user_id, ())))

    async def user(self, user_id: str) -> tuple[UserState | None, Score | None]:
        mu = self.users.get(user_id)
        return (mu.state if mu else None), self.scores.get(user_id)

    async def stats(self) -> dict[str, int]:
        return dict(self._stats)

    async def unconfirmed(self) -> dict[int, str]:
        return dict(self._unconfirmed)

    async def months(self) -> dict[str, int]:
        return {k: v for k, v in self._months.items() if v}

    async def watermarks(self) -> dict[int, int]:
        return dict(self._wm)

    async def count_users(self) -> int:
        return len(self.users)

    def _ranking(self) -> list[tuple[str, float]]:
        # the order of ZREVRANGE: risk descending, equal risks by member descending
        return sorted(self.ranked.items(), key=lambda ur: (ur[1], ur[0].encode()), reverse=True)

    async def top(self, offset: int, count: int) -> list[tuple[str, float]]:
        return self._ranking()[offset:offset + max(0, count)]

    async def rank_of(self, user_id: str) -> tuple[int, int] | None:
        if user_id not in self.ranked:
            return None
        return [u for u, _ in self._ranking()].index(user_id), len(self.ranked)

    async def top_reasons(self, user_ids: Sequence[str]) -> list[str]:
        out = []
        for u in user_ids:
            why = self.scores[u].reasons if u in self.scores else ()
            out.append(REASON_NAMES[why[0][0]] if why else "")
        return out

    async def count_at_least(self, risk: float) -> int:
        return sum(1 for r in self.ranked.values() if r >= risk)

    async def count_ranked(self) -> int:
        return len(self.ranked)
