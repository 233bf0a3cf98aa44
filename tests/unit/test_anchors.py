"""The shared anchors (stream/anchors.py), driven as ``evaluate`` drives them (over
offline/anchor_book.py), against the label rules of docs/design.md section 5 worked out by
brute force: who is snapshotted at each midnight, each label, and when it leaves."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from core.apply import MemoryUser, apply_event
from core.events import Event
from core.labels import DAY_MS, due_anchors, first_anchor
from offline.anchor_book import AnchorBook, run_now
from stream.anchors import Anchors, Release

H = 30 * DAY_MS


def replay(stream: Sequence[tuple[str, int]]) -> list[Release]:
    """Events (user, time) in arrival order; the clock is the watermark; every due
    anchor runs before the event that passes it (as the worker's processor)."""
    users: dict[str, MemoryUser] = {}
    book = AnchorBook(users)
    out: list[Release] = []

    async def sink(releases: Sequence[Release]) -> None:
        out.extend(releases)

    anchors = Anchors(book, sink, horizon_days=30, sample_rate=1.0)
    clock = done = None
    for n, (uid, t) in enumerate(stream):
        if clock is None or done is None:
            clock = done = book.started = first_anchor(t)
        clock = max(clock, t)
        for a in due_anchors(done, clock):
            run_now(anchors.run(0, a))
            done = a
        mu = users.get(uid)
        old = mu.state.last_ms if mu is not None else None
        apply_event(users, Event(event_id=f"e{n}", user_id=uid, event_type="view",
                                 event_time=t), 0, n)
        book.moved(uid, old)
    return out


def brute_force(stream: Sequence[tuple[str, int]]) -> list[tuple[str, int, int, int]]:
    """(user, t, label, release) of every release, from the rules alone: anchor A runs
    once the clock (the largest time so far) is past A; the events applied before it
    are those that arrived while the clock was at most A."""
    clocks = [max(t for _, t in stream[:k + 1]) for k in range(len(stream))]
    first = first_anchor(stream[0][1])

    def before(a: int) -> list[tuple[str, int]]:
        return [e for e, c in zip(stream, clocks, strict=True) if c <= a]

    out = []
    a = first + 2 * DAY_MS  # the first release can only come H after a snapshot
    while a < clocks[-1]:
        t = a - H
        if t > first:
            seen = before(t)
            newest = {u: max(x for v, x in seen if v == u) for u, _ in seen}
            for u in sorted(u for u, last in newest.items() if t - H < last <= t):
                back = any(v == u and t < x <= a for v, x in before(a))
                out.append((u, t, 0 if back else 1, a))
        a += DAY_MS
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 120 * 24)),
                min_size=1, max_size=60))
def test_labels_equal_brute_force(raw: list[tuple[str, int]]) -> None:
    """Random arrivals (late ones too: times are not sorted), hours over 120 days."""
    stream = [(u, h * 3_600_000) for u, h in raw]
    got = [(r.user_id, r.t_ms, r.label, r.release_ms) for r in replay(stream)]
    assert got == brute_force(stream)


def test_leakage_boundaries() -> None:
    t = 100 * DAY_MS
    stream = [(u, t - DAY_MS) for u in ("at_t", "at_t_plus_h", "after", "before", "late")]
    stream += [("before", t - 1),  # before t: in the features, not a return
               ("at_t", t),  # at t: in the features (the anchor runs after it), not a return
               ("at_t_plus_h", t + H),  # the last instant of (t, t + H]: a return
               ("after", t + H + 1),  # after the horizon: says nothing; passes anchor t + H
               ("late", t + 5),  # a return that arrives after the release changes nothing
               ("x", t + H + 3 * DAY_MS)]
    got = {r.user_id: (r.label, r.release_ms) for r in replay(stream) if r.t_ms == t}
    assert got == {u: (y, t + H) for u, y in [("at_t", 1), ("at_t_plus_h", 0), ("after", 1),
                                               ("before", 1), ("late", 1)]}


def test_a_release_encodes_what_the_learner_reads() -> None:
    row = [float(i) for i in range(17 + 4 + 9)]
    r = Release("u", 3, 5 * DAY_MS, 2, 7, row, 1, 35 * DAY_MS)
    from stream.learner.state import make_state

    state = make_state("logreg", 0.01, 30, 100, 10, value_inputs=True)
    assert state.learn(r.message(), 0) is not None and state.examples == 1
    assert list(r.inputs().values()) == row and len(r.example().features) == 30
    old = Release("u", 3, 5 * DAY_MS, 3, 7, row[:17], 0, 35 * DAY_MS)  # 17 columns only
    assert state.learn(old.message(), 1) is not None and state.examples == 2
