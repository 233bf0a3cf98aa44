"""Churn labels without leakage or timing bias: the rules (docs/design.md section 5).

At each daily anchor ``t`` (UTC midnight, event time) a deterministic sample of
users active in ``(t - H, t]`` is snapshotted with its features at ``t``. The
label of a snapshot is 1 if the user has no event in ``(t, t + H]``, else 0;
whichever way a snapshot settles, it is released for learning only when the
clock reaches ``t + H``, so both classes reach the learner with the same delay.
The pure pieces are here; the orchestration, shared by the worker and ``evaluate``,
is :class:`stream.anchors.Anchors`.

>>> DAY = 86_400_000
>>> [a // DAY for a in due_anchors(10 * DAY, 12 * DAY + 5)]  # the anchors an event runs
[11, 12]
>>> is_active(12 * DAY, 40 * DAY, 30), is_active(10 * DAY, 40 * DAY, 30)
(True, False)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
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
