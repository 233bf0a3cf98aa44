"""core/time_policy.py: an idle partition never runs ahead of any partition that still
moves, a moving one is never pushed, and nothing moves when nobody moves."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from core.time_policy import IdleTracker, targets

polls = st.lists(st.dictionaries(st.integers(0, 5), st.integers(0, 10**6), max_size=6),
                 min_size=1, max_size=12)


@settings(max_examples=300)
@given(polls, st.floats(0.5, 5.0), st.frozensets(st.integers(0, 5)))
def test_idle_partitions_follow_the_slowest_moving_one(seq, idle, owned) -> None:  # type: ignore[no-untyped-def]
    tracker = IdleTracker(idle)
    wms: dict[int, int] = {}
    for now, poll in enumerate(seq):  # one poll a second; watermarks only grow
        for p, t in poll.items():
            wms[p] = max(wms.get(p, t), t)
        tracker.observe(wms, float(now))
        goals = targets(tracker, owned, wms, float(now))
        moving = {p for p, at in tracker.moved_at.items() if now - at < idle}
        assert set(goals) <= set(owned) - moving
        assert set(goals) <= set(wms)  # a partition never seen has no clock to move
        if not moving:
            assert goals == {}
        for goal in goals.values():
            assert goal == min(wms[q] for q in moving)


def test_off_and_wall() -> None:
    t = IdleTracker(0)
    t.observe({0: 1, 1: 2}, 0.0)
    t.observe({0: 1, 1: 9}, 100.0)
    assert targets(t, {0, 1}, {0: 1, 1: 9}, 100.0) == {}  # 0 s: never idle
    assert targets(t, {0}, {0: 1, 1: 9}, 100.0, wall_ms=5_000, grace_ms=1_000) == {0: 4_000}


def test_a_partition_just_assigned_gets_the_timeout_to_start() -> None:
    """A partition whose owner died has not moved for a while but has a backlog: its new
    owner does not run its anchors ahead of that backlog before the timeout has passed."""
    t = IdleTracker(10)
    t.observe({0: 5, 1: 5}, 0.0)
    t.observe({0: 50, 1: 5}, 30.0)
    assert targets(t, {0, 1}, {0: 900, 1: 100}, 30.0) == {1: 900}
    t.touch({1}, 30.0)
    assert targets(t, {0, 1}, {0: 900, 1: 100}, 39.0) == {}
    t.observe({0: 60, 1: 5}, 41.0)
    assert targets(t, {0, 1}, {0: 950, 1: 100}, 41.0) == {1: 950}


def test_no_watermarks_nothing_to_follow() -> None:
    """After a Redis restart the watermarks may be gone while offsets still move: nothing
    to follow (not an error), and a partition without a clock is never a target."""
    t = IdleTracker(10)
    t.observe({0: 5, 1: 5}, 0.0)
    t.observe({0: 50, 1: 5}, 30.0)
    assert targets(t, {0, 1}, {}, 30.0) == {}
    assert targets(t, {0, 1}, {0: 900}, 30.0) == {}
