"""When time moves without traffic: idle partitions and the wall clock (pure).

A partition's anchors, label releases and sweeps run when one of its events crosses a
UTC midnight (``stream/worker/processor.py``). A partition without traffic would hold
them back for ever, and in a live deployment silent users would never rise in risk at
night. ``CHURN_CLOCK`` picks the policy (docs/design.md section 2):

- ``event`` (default; replays): the clock is the event-time watermark. A partition
  whose records have stopped coming (its applied offset has not moved for
  ``CHURN_IDLE_PARTITION_SECONDS`` of wall time, counted from when this worker got it)
  is idle and follows the others: its anchors run up to the smallest watermark among
  the partitions still moving (none moving: nothing moves; a replay that has ended
  stays where its events left it). 0 turns this off. Progress is measured in records,
  not in the watermark: a sparse partition's watermark may wait days of event time for
  a second user (core/clock.py) while its records keep coming, and following the
  others then would run its anchors ahead of its own events.
- ``wall`` (live): every partition's anchors follow the wall clock, less
  ``CHURN_WALL_CLOCK_GRACE_SECONDS`` for traffic still in flight, so silent users rise
  in risk with no traffic at all.

Either way an anchor is the same function of the events before it as when an event
triggers it (``core.labels.due_anchors``); an event that arrives after its partition's
clock has passed it is applied as a late event is.

>>> t = IdleTracker(idle_seconds=10)
>>> t.observe({0: 7, 1: 3}, now=0.0)  # applied offsets
>>> t.observe({0: 90, 1: 3}, now=11.0)  # partition 1 has not moved for 11 s
>>> targets(t, {0, 1}, {0: 500, 1: 100}, now=11.0)  # (watermarks)
{1: 500}
>>> targets(t, {1}, {0: 500, 1: 100}, now=30.0)  # nobody moves: nothing to follow
{}
>>> t.observe({0: 95, 1: 3}, now=31.0)
>>> t.touch({1}, now=31.0)  # just assigned here: its backlog gets the timeout to start
>>> targets(t, {0, 1}, {0: 600, 1: 100}, now=35.0)
{}
>>> targets(None, {0, 1}, {0: 5}, now=0.0, wall_ms=86_400_000, grace_ms=60_000)
{0: 86340000, 1: 86340000}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class IdleTracker:
    """When each partition's progress (its applied offset) last moved (wall seconds,
    from polls), or when it was assigned to this worker (:meth:`touch`)."""

    def __init__(self, idle_seconds: float) -> None:
        self.idle = idle_seconds
        self.seen: dict[int, int] = {}
        self.moved_at: dict[int, float] = {}

    def observe(self, watermarks: Mapping[int, int], now: float) -> None:
        for p, wm in watermarks.items():
            if self.seen.get(p) != wm:
                self.seen[p], self.moved_at[p] = wm, now

    def touch(self, partitions: Iterable[int], now: float) -> None:
        """``partitions`` start their idle timeout anew (just assigned: a partition whose
        owner died has not moved for a while, yet has a backlog to apply)."""
        for p in partitions:
            self.moved_at[p] = now

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
    clocks = [watermarks[q] for q in moving if q in watermarks]
    if not clocks:  # (e.g. the watermarks gone with a Redis restart)
        return {}
    follow = min(clocks)
    return {p: follow for p in sorted(owned)
            if p not in moving and p in tracker.seen and p in watermarks}
