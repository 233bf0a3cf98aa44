"""When time moves without traffic: idle partitions and the wall clock (pure).

A partition's anchors, label releases and sweeps run when one of its events crosses a
UTC midnight (``stream/worker/processor.py``). A partition without traffic would hold
them back for ever, and in a live deployment silent users would never rise in risk at
night. ``CHURN_CLOCK`` picks the policy (docs/design.md section 2):

- ``event`` (default; replays): the clock is the event-time watermark. A partition whose
  watermark has not moved for ``CHURN_IDLE_PARTITION_SECONDS`` of wall time is idle and
  follows the others: its anchors run up to the smallest watermark among the
  partitions still moving (none moving: nothing moves; a replay that has ended stays
  where its events left it). 0 turns this off.
- ``wall`` (live): every partition's anchors follow the wall clock, less
  ``CHURN_WALL_CLOCK_GRACE_SECONDS`` for traffic still in flight, so silent users rise
  in risk with no traffic at all.

Either way an anchor is the same function of the events before it as when an event
triggers it (``core.labels.due_anchors``); an event that arrives after its partition's
clock has passed it is applied as a late event is.

>>> t = IdleTracker(idle_seconds=10)
>>> t.observe({0: 100, 1: 100}, now=0.0)
>>> t.observe({0: 500, 1: 100}, now=11.0)  # partition 1 has not moved for 11 s
>>> targets(t, {0, 1}, {0: 500, 1: 100}, now=11.0)
{1: 500}
>>> targets(t, {1}, {0: 500, 1: 100}, now=30.0)  # nobody moves: nothing to follow
{}
>>> targets(None, {0, 1}, {0: 5}, now=0.0, wall_ms=86_400_000, grace_ms=60_000)
{0: 86340000, 1: 86340000}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class IdleTracker:
    """When each partition's watermark last moved (wall seconds, from polls)."""

    def __init__(self, idle_seconds: float) -> None:
        self.idle = idle_seconds
        self.seen: dict[int, int] = {}
        self.moved_at: dict[int, float] = {}

    def observe(self, watermarks: Mapping[int, int], now: float) -> None:
        for p, wm in watermarks.items():
            if self.seen.get(p) != wm:
                self.seen[p], self.moved_at[p] = wm, now

    def moving(self, now: float) -> set[int]:
        return {p for p, at in self.moved_at.items() if now - at < self.idle}


def targets(tracker: IdleTracker | None, owned: Iterable[int], watermarks: Mapping[int, int],
            now: float, wall_ms: int | None = None, grace_ms: int = 0) -> dict[int, int]:
    """The time each owned partition's anchors should reach without traffic: the wall
    clock less the grace (``wall_ms`` given), else, for an idle partition, the smallest
    watermark of the moving ones. Partitions absent from the result stay put."""
    if wall_ms is not None:
        return {p: wall_ms - grace_ms for p in sorted(owned)}
    if tracker is None or tracker.idle <= 0:
        return {}
    moving = tracker.moving(now)
    if not moving:
        return {}
    follow = min(watermarks[q] for q in moving if q in watermarks)
    return {p: follow for p in sorted(owned) if p not in moving and p in tracker.seen}
