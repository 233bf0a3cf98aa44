"""The in-memory side of ``evaluate``'s anchors: what :class:`stream.anchors.Anchors` reads
and writes (the worker passes Redis), over the evaluator's users, one partition (0).

Users are indexed by the day of their newest event, so an anchor finds the users active
in ``(A - H, A]`` without a scan of everyone. Every method returns at once (no I/O):
:func:`run_now` drives an anchor to its end without an event loop.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from core.apply import MemoryUser
from core.features import Aggregates, window_aggregates
from core.labels import DAY_MS

T = TypeVar("T")


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never waits (every await here returns at once)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("an offline anchor waited for I/O")


class AnchorBook:
    def __init__(self, users: dict[str, MemoryUser]) -> None:
        self.users = users
        self.by_day: dict[int, set[str]] = defaultdict(set)  # day of last event -> users
        self.pending: dict[int, dict[str, Sequence[float]]] = {}  # anchor -> snapshots
        self.started: int | None = None  # the clock's first midnight (label warm-up)

    def moved(self, user_id: str, old_last_ms: int | None) -> None:
        """After an event of the user: reindex them if their newest day changed."""
        new_day = self.users[user_id].state.last_ms // DAY_MS
        old_day = old_last_ms // DAY_MS if old_last_ms is not None else None
        if new_day != old_day:
            if old_day is not None:
                self.by_day[old_day].discard(user_id)
            self.by_day[new_day].add(user_id)

    def active(self, after_ms: int, until_ms: int) -> list[str]:
        """Users whose newest event is in ``(after, until]``, in id order."""
        out = [u for day in range(after_ms // DAY_MS, until_ms // DAY_MS + 1)
               for u in self.by_day.get(day, ())
               if after_ms < self.users[u].state.last_ms <= until_ms]
        out.sort()
        return out

    # --- stream.anchors.AnchorStore ---------------------------------------------------
    async def clock(self) -> dict[str, int]:
        return {"f:0": self.started} if self.started is not None else {}

    async def active_users(self, partition: int, after_ms: float, until_ms: float
                           ) -> list[tuple[str, int]]:
        return [(u, self.users[u].state.last_ms) for u in self.active(int(after_ms),
                                                                     int(until_ms))]

    async def aggregates_at(self, user_ids: Sequence[str], now_ms: int,
                            partition: int | None = None) -> list[Aggregates | None]:
        return [window_aggregates(self.users[u].state, now_ms) for u in user_ids]

    async def put_snapshots(self, partition: int, anchor_ms: int,
                            rows: Sequence[tuple[str, Sequence[float]]]) -> None:
        if rows:
            self.pending[anchor_ms] = dict(rows)

    async def snapshots(self, partition: int, anchor_ms: int
                        ) -> list[tuple[str, list[float]]]:
        return sorted((u, list(r)) for u, r in self.pending.get(anchor_ms, {}).items())

    async def last_events(self, user_ids: Sequence[str],
                          partition: int | None = None) -> list[int | None]:
        return [self.users[u].state.last_ms for u in user_ids]

    async def finish_anchor(self, partition: int, anchor_ms: int, released_anchor_ms: int,
                            counters: dict[str, int]) -> None:
        self.pending.pop(released_anchor_ms, None)
