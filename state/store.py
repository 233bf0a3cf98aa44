"""The feature-store interface and its in-memory backend.

The stream processor talks to a :class:`FeatureStore`; the Redis backend
(:mod:`state.redis_store`) is the real one, :class:`MemoryFeatureStore` serves
offline evaluation and unit tests. One test suite runs over both.

A batch is applied atomically: per-event state changes, the batch's counters,
the partition's applied offset and watermark, and the score writes carried
with it either all happen or none do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from core.apply import DUPLICATE, REDELIVERED, STATUS_NAMES, MemoryUser, apply_event
from core.events import Event
from core.features import HORIZON_DAYS, Aggregates, UserState, window_aggregates
from state.codec import Score


class Item(NamedTuple):
    """One valid event to apply, where it came from, and whether to return the new state."""

    event: Event
    partition: int
    offset: int
    want_state: bool = False


class Commit(NamedTuple):
    """Counters of one batch of one partition, counted once (guarded by ``last_offset``)."""

    partition: int
    last_offset: int
    watermark_ms: int
    counters: dict[str, int]


class Applied(NamedTuple):
    """Status of one item and, if asked for, the user's window aggregates after it
    (at the user's newest event: the reference time of scoring at an event)."""

    status: int
    aggregates: Aggregates | None


class FeatureStore(Protocol):
    async def applied_offsets(self) -> dict[int, int]:
        """Last applied offset per partition (what a new owner of a partition skips)."""

    async def apply(self, items: Sequence[Item], commits: Sequence[Commit] = (),
                    scores: Sequence[tuple[str, Score]] = ()) -> list[Applied]:
        """Apply a batch atomically; one :class:`Applied` per item, in order."""

    async def user(self, user_id: str) -> tuple[UserState | None, Score | None]:
        """Current state and latest score of one user."""

    async def stats(self) -> dict[str, int]:
        """All counters."""

    async def watermarks(self) -> dict[int, int]:
        """Largest event time seen per partition (ms)."""

    async def count_users(self) -> int:
        """Number of users with state."""

    async def top(self, offset: int, count: int) -> list[tuple[str, float]]:
        """Ranked users ``offset .. offset + count - 1`` (riskiest first; ties: larger id first)."""

    async def rank_of(self, user_id: str) -> tuple[int, int] | None:
        """(0-based rank, ranked users) of one user; None if not ranked."""

    async def count_ranked(self) -> int:
        """Number of ranked users."""


class MemoryFeatureStore:
    """Dict-backed store with the exact semantics of the Redis scripts."""

    def __init__(self, horizon_days: int = HORIZON_DAYS) -> None:
        self.horizon_days = horizon_days
        self.users: dict[str, MemoryUser] = {}
        self.scores: dict[str, Score] = {}
        self._offsets: dict[int, int] = {}
        self._stats: dict[str, int] = {}
        self._wm: dict[int, int] = {}

    async def applied_offsets(self) -> dict[int, int]:
        return dict(self._offsets)

    async def apply(self, items: Sequence[Item], commits: Sequence[Commit] = (),
                    scores: Sequence[tuple[str, Score]] = ()) -> list[Applied]:
        out = []
        for it in items:
            status = apply_event(self.users, it.event, it.partition, it.offset, self.horizon_days)
            if status != REDELIVERED:
                name = STATUS_NAMES[status]
                self._stats[name] = self._stats.get(name, 0) + 1
                if status != DUPLICATE:
                    tname = "type:" + it.event.event_type
                    self._stats[tname] = self._stats.get(tname, 0) + 1
            mu = self.users.get(it.event.user_id)
            agg = window_aggregates(mu.state, mu.state.last_ms) if it.want_state and mu else None
            out.append(Applied(status, agg))
        for c in commits:
            if c.last_offset <= self._offsets.get(c.partition, -1):
                continue
            self._offsets[c.partition] = c.last_offset
            for name, inc in c.counters.items():
                self._stats[name] = self._stats.get(name, 0) + inc
            if c.watermark_ms > self._wm.get(c.partition, -1):
                self._wm[c.partition] = c.watermark_ms
        for uid, score in scores:
            self.scores[uid] = score
        return out

    async def user(self, user_id: str) -> tuple[UserState | None, Score | None]:
        mu = self.users.get(user_id)
        return (mu.state if mu else None), self.scores.get(user_id)

    async def stats(self) -> dict[str, int]:
        return dict(self._stats)

    async def watermarks(self) -> dict[int, int]:
        return dict(self._wm)

    async def count_users(self) -> int:
        return len(self.users)

    def _ranking(self) -> list[tuple[str, float]]:
        # the order of ZREVRANGE: risk descending, equal risks by member descending
        return sorted(((u, s.risk) for u, s in self.scores.items()),
                      key=lambda ur: (ur[1], ur[0].encode()), reverse=True)

    async def top(self, offset: int, count: int) -> list[tuple[str, float]]:
        return self._ranking()[offset:offset + max(0, count)]

    async def rank_of(self, user_id: str) -> tuple[int, int] | None:
        ranking = [u for u, _ in self._ranking()]
        return (ranking.index(user_id), len(ranking)) if user_id in self.scores else None

    async def count_ranked(self) -> int:
        return len(self.scores)


__all__ = ["REDELIVERED", "Applied", "Commit", "FeatureStore", "Item", "MemoryFeatureStore"]
