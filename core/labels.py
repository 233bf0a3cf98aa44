"""Churn labels without leakage or timing bias: the reference semantics (docs/design.md section 5).

At each daily anchor ``t`` (UTC midnight, event time) a deterministic sample of
users active in ``(t - H, t]`` is snapshotted with its features at ``t``. The
label of a snapshot is 1 if the user has no event in ``(t, t + H]``, else 0. A
return settles every pending snapshot of the user as 0 at once; whichever way
a snapshot settles, it is released for learning only when the clock reaches
``t + H``, so both classes reach the learner with the same delay.

>>> DAY = 86_400_000
>>> book = LabelBook(horizon_days=30)
>>> book.snapshot("u", 10 * DAY, {"x": 1.0}); book.snapshot("v", 10 * DAY, {"x": 2.0})
>>> book.observe("u", 12 * DAY)          # u comes back: settled as retained, not released
1
>>> book.release(39 * DAY)               # nothing is due before t + H
[]
>>> [(e.user_id, e.label) for e in book.release(40 * DAY)]
[('u', 0), ('v', 1)]
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

DAY_MS = 86_400_000


def anchors_crossed(prev_clock_ms: int, clock_ms: int) -> Iterator[int]:
    """UTC midnights in ``(prev_clock_ms, clock_ms]`` (the anchors a clock move passes).

    >>> [a // DAY_MS for a in anchors_crossed(DAY_MS - 1, 3 * DAY_MS)]
    [1, 2, 3]
    >>> list(anchors_crossed(5, 7))
    []
    """
    first = prev_clock_ms // DAY_MS + 1
    for day in range(first, clock_ms // DAY_MS + 1):
        yield day * DAY_MS


def first_anchor(t_ms: int) -> int:
    """Where a partition's anchors start: the UTC midnight of its first event."""
    return t_ms - t_ms % DAY_MS


def due_anchors(done_ms: int, t_ms: int) -> list[int]:
    """The daily anchors an event at ``t_ms`` runs before it is applied, when the last
    one run is ``done_ms``: the midnights A with done < A < t, in order (the live
    processor and ``evaluate`` both follow this).

    >>> [a // DAY_MS for a in due_anchors(DAY_MS, 3 * DAY_MS + 1)]
    [2, 3]
    >>> due_anchors(DAY_MS, 2 * DAY_MS)  # an event at midnight: that anchor comes later
    []
    """
    return list(anchors_crossed(done_ms, t_ms - 1)) if t_ms > done_ms + DAY_MS else []


def sampled(user_id: str, anchor_ms: int, rate: float) -> bool:
    """Deterministic Bernoulli(rate) draw per (user, anchor): the same on every replay.

    >>> sampled("u1", 0, 1.0), sampled("u1", 0, 0.0)
    (True, False)
    """
    h = hashlib.blake2b(f"{user_id}|{anchor_ms}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") < rate * 2.0**64


def is_active(last_event_ms: int, anchor_ms: int, horizon_days: int) -> bool:
    """Active under the label definition: an event in ``(anchor - H, anchor]``."""
    return anchor_ms - horizon_days * DAY_MS < last_event_ms <= anchor_ms


class Example(NamedTuple):
    user_id: str
    t_ms: int
    features: Mapping[str, float]
    label: int
    release_ms: int


@dataclass(order=True, slots=True)
class _Pending:
    release_ms: int
    user_id: str
    t_ms: int
    features: Mapping[str, float] = field(compare=False)
    returned: bool = field(default=False, compare=False)


class LabelBook:
    """Pending snapshots, settled by returns and released at ``t + H`` in time order."""

    def __init__(self, horizon_days: int = 30) -> None:
        self.h_ms = horizon_days * DAY_MS
        self._heap: list[_Pending] = []
        self._by_user: dict[str, list[_Pending]] = {}

    def __len__(self) -> int:
        return len(self._heap)

    def snapshot(self, user_id: str, t_ms: int, features: Mapping[str, float]) -> None:
        """Pending snapshot at anchor ``t_ms``. Take it when the event-time clock reaches
        the anchor, before observing any event later than ``t_ms`` (those are returns)."""
        p = _Pending(t_ms + self.h_ms, user_id, t_ms, dict(features))
        heapq.heappush(self._heap, p)
        self._by_user.setdefault(user_id, []).append(p)

    def observe(self, user_id: str, event_ms: int) -> int:
        """An event of the user: settles its snapshots with ``t < event <= t + H`` as
        retained; returns how many it settled. Events at or before ``t``, or after
        ``t + H``, say nothing about that snapshot."""
        settled = 0
        for p in self._by_user.get(user_id, ()):
            if not p.returned and p.t_ms < event_ms <= p.release_ms:
                p.returned = True
                settled += 1
        return settled

    def release(self, clock_ms: int) -> list[Example]:
        """Every snapshot whose ``t + H`` is at or before the clock, oldest first."""
        out = []
        while self._heap and self._heap[0].release_ms <= clock_ms:
            p = heapq.heappop(self._heap)
            mine = self._by_user[p.user_id]
            mine.remove(p)
            if not mine:
                del self._by_user[p.user_id]
            out.append(Example(p.user_id, p.t_ms, p.features, 0 if p.returned else 1,
                               p.release_ms))
        return out
