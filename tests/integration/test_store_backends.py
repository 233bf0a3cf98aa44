"""One suite over both feature-store backends (in-memory and real Redis with the Lua scripts)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.apply import APPLIED, DUPLICATE, LATE, LATE_OUTSIDE, REDELIVERED
from core.events import Event
from core.features import DAY_MS, features_at, window_aggregates
from core.tiers import ALL_TIERS, Crossing, TierRecord
from services.embedded import EmbeddedServices
from state.codec import Score
from state.memory_store import MemoryFeatureStore
from state.redis_store import RedisFeatureStore, connect
from state.store import (
    Commit,
    FeatureStore,
    Item,
    Placed,
    ScoreWrite,
    StaleBatch,
    TierChange,
)
from tests.reference import counted_months, monthly_counters

T0 = 1_600_000_000_000


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[FeatureStore]:
    if request.param == "memory":
        yield MemoryFeatureStore()
        return
    svc: EmbeddedServices = request.getfixturevalue("services")
    yield RedisFeatureStore(connect(svc.redis.url), prefix=f"s{uuid.uuid4().hex[:8]}")


def ev(i: int, t: int, user: str = "u", **kw: object) -> Event:
    return Event(event_id=f"e{i}", user_id=user, event_type=kw.pop("event_type", "view"),
                 event_time=t, **kw)


_LOOP = asyncio.new_event_loop()  # redis.asyncio connections belong to one loop


def run(coro):  # type: ignore[no-untyped-def]
    return _LOOP.run_until_complete(coro)


def test_statuses(store: FeatureStore) -> None:
    items = [Item(ev(0, T0), 0, 0), Item(ev(1, T0 + 5), 0, 1), Item(ev(2, T0 + 1), 0, 2),
             Item(ev(1, T0 + 5), 0, 3), Item(ev(3, T0 + 40 * DAY_MS), 0, 4),
             Item(ev(4, T0 + 2 * DAY_MS), 0, 5), Item(ev(1, T0 + 5), 0, 6)]
    got = [a.status for a in run(store.apply(items))]
    assert got == [APPLIED, APPLIED, LATE, DUPLICATE, APPLIED, LATE_OUTSIDE, LATE_OUTSIDE]
    assert [a.status for a in run(store.apply(items[:3]))] == [REDELIVERED] * 3
    stats = run(store.stats())
    assert stats["applied"] == 3 and stats["late"] == 1 and stats["late_outside"] == 2
    assert stats["duplicate"] == 1 and stats["type:view"] == 6


def test_aggregates_returned_only_when_asked_and_scores_stored(store: FeatureStore) -> None:
    res = run(store.apply([Item(ev(0, T0, price=2.0, brand="x"), 0, 0, False),
                           Item(ev(1, T0 + 1, price=4.0, brand="y"), 0, 1, True),
                           Item(ev(2, T0, user="w"), 0, 2, False)]))
    run(store.write_scores([ScoreWrite("u", 0, Score(0.25, T0, "rule"), T0 + 1)]))
    assert res[0].aggregates is None and res[2].aggregates is None
    agg = res[1].aggregates
    assert agg is not None
    assert (agg.now_ms, agg.n30, agg.price_n, agg.price_mean, agg.price_m2) == (
        T0 + 1, 2, 2, 3.0, 2.0)
    assert (agg.brand_total, agg.brand_max, agg.switches) == (2, 1, 1)
    assert agg.active_days == (T0 // DAY_MS,)
    state, score = run(store.user("u"))
    assert state is not None and window_aggregates(state, state.last_ms) == agg
    assert score == Score(0.25, T0, "rule")
    assert run(store.user("nobody")) == (None, None)
    assert run(store.count_users()) == 2


def test_commit_counts_each_offset_range_once(store: FeatureStore) -> None:
    run(store.apply([], [Commit(3, 10, T0, {"rejected": 2})]))
    run(store.apply([], [Commit(3, 10, T0 + 9, {"rejected": 2})]))  # a re-read batch
    run(store.apply([], [Commit(3, 12, T0 - 9, {"rejected": 1})]))
    assert run(store.stats()) == {"rejected": 3}
    assert run(store.applied_offsets()) == {3: 12}
    assert run(store.watermarks()) == {3: T0}


def test_a_commit_behind_another_workers_is_refused(store: FeatureStore) -> None:
    """Two workers computed batches from applied offset 10 (a rebalance with a batch
    still under way): the second commit is refused whole, its events still applied
    once (the per-user offset check), and the retry from the stored state counts once."""
    run(store.apply([], [Commit(3, 10, T0, {"rejected": 1}, None, -1)]))
    run(store.apply([Item(ev(1, T0 + 5), 3, 11, False)],
                    [Commit(3, 11, T0 + 5, {"clock:unconfirmed": 1}, '{"u":9}', 10)]))
    with pytest.raises(StaleBatch):  # computed from 10 too, overlapping 11
        run(store.apply([Item(ev(1, T0 + 5), 3, 11, False), Item(ev(2, T0 + 6), 3, 12, False)],
                        [Commit(3, 12, T0 + 6, {"clock:unconfirmed": 2}, "{}", 10)]))
    assert run(store.stats())["clock:unconfirmed"] == 1
    assert run(store.applied_offsets()) == {3: 11} and run(store.unconfirmed()) == {3: '{"u":9}'}
    # the retry, from the stored offset 11: only record 12 is new
    run(store.apply([Item(ev(1, T0 + 5), 3, 11, False), Item(ev(2, T0 + 6), 3, 12, False)],
                    [Commit(3, 12, T0 + 6, {"clock:unconfirmed": 1}, "{}", 11)]))
    stats = run(store.stats())
    assert stats["clock:unconfirmed"] == 2 and stats["applied"] == 2
    assert run(store.applied_offsets()) == {3: 12} and run(store.watermarks()) == {3: T0 + 6}


def test_backends_agree_on_a_random_stream(services: EmbeddedServices) -> None:
    rng = random.Random(4)
    items, ids = [], []
    for i in range(4000):
        eid = rng.choice(ids) if ids and rng.random() < 0.05 else f"e{i}"
        ids.append(eid)
        t = T0 + i * DAY_MS * 90 // 4000 - (rng.randrange(40 * DAY_MS) if rng.random() < 0.1
                                             else 0)
        e = Event(event_id=eid, user_id=f"u{rng.randrange(25)}", event_time=t,
                  event_type=rng.choice(["view", "cart", "purchase", "remove_from_cart"]),
                  price=rng.choice([None, 1.5, 10.0, rng.random() * 100]),
                  brand=rng.choice([None, "acme", "zen", "ünï"]))
        items.append(Item(e, rng.randrange(2), i, rng.random() < 0.3))
    mem = MemoryFeatureStore()
    red = RedisFeatureStore(connect(services.redis.url), prefix=f"s{uuid.uuid4().hex[:8]}")
    statuses = []
    for k in range(0, len(items), 400):
        a = run(mem.apply(items[k:k + 400]))
        b = run(red.apply(items[k:k + 400]))
        assert a == b
        statuses += [x.status for x in a]
    assert run(mem.stats()) == run(red.stats())
    # the monthly figures: the same on both, and those of each user's counted months
    want = monthly_counters(counted_months(items, statuses))
    assert run(red.months()) == run(mem.months()) == want and len(want) >= 15
    for uid in mem.users:
        sm, sr = run(mem.user(uid))[0], run(red.user(uid))[0]
        assert sm == sr
        assert features_at(sm, sm.last_ms + 3 * DAY_MS) == features_at(sr, sr.last_ms + 3 * DAY_MS)


@st.composite
def streams(draw: st.DrawFn) -> list[Item]:
    """Short multi-user streams with late, very late, duplicate and re-read events."""
    items: list[Item] = []
    t = T0
    for off in range(draw(st.integers(1, 40))):
        if items and draw(st.integers(0, 9)) == 0:  # duplicate (new offset) or re-read
            old = draw(st.sampled_from(items))
            items.append(old if draw(st.booleans()) else old._replace(offset=off))
            continue
        t += draw(st.sampled_from([0, 1, 3_600_000, DAY_MS, 5 * DAY_MS, 31 * DAY_MS,
                                   97 * DAY_MS]))  # long gaps: the long-range inputs
        when = t - draw(st.sampled_from([0, 0, 0, DAY_MS, 29 * DAY_MS, 45 * DAY_MS,
                                         200 * DAY_MS]))
        e = Event(event_id=f"e{off}", user_id=draw(st.sampled_from(["a", "b", "{c}"])),
                  event_type=draw(st.sampled_from(["view", "cart", "purchase", "other"])),
                  event_time=max(0, when),
                  price=draw(st.none() | st.floats(0, 1e6, allow_nan=False)),
                  brand=draw(st.none() | st.sampled_from(["x", "y", "ü" * 40])))
        items.append(Item(e, 0, off, draw(st.booleans())))
    return items


@settings(max_examples=60, deadline=None)
@given(streams())
def test_lua_matches_reference_semantics(services: EmbeddedServices, items: list[Item]) -> None:
    mem = MemoryFeatureStore()
    red = RedisFeatureStore(connect(services.redis.url), prefix=f"h{uuid.uuid4().hex[:8]}")
    statuses = run(mem.apply(items))
    assert statuses == run(red.apply(items))
    assert run(mem.stats()) == run(red.stats())
    want = monthly_counters(counted_months(items, [a.status for a in statuses]))
    assert run(red.months()) == run(mem.months()) == want
    for uid in mem.users:
        assert run(mem.user(uid))[0] == run(red.user(uid))[0]
    # aggregates at later reference times (sweeps, anchors) agree too, with the long-range
    # sums (90/180/365-day purchase days, gaps) at their window edges
    for uid, mu in mem.users.items():
        for later in (0, 1, DAY_MS // 2, 7 * DAY_MS, 29 * DAY_MS, 31 * DAY_MS, 89 * DAY_MS,
                      90 * DAY_MS, 179 * DAY_MS, 364 * DAY_MS, 365 * DAY_MS):
            now = mu.state.last_ms + later
            assert run(mem.aggregates_at([uid], now)) == run(red.aggregates_at([uid], now))


def test_ranking_is_the_same_on_both_backends(store: FeatureStore) -> None:
    risks = {"a": 0.5, "b": 0.9, "c": 0.5, "d": 0.1, "ü": 0.5, "e": 0.9}
    run(store.write_scores([ScoreWrite(u, 0, Score(r, 1, "rule"), 1) for u, r in risks.items()]))
    placed = run(store.write_scores([ScoreWrite("d", 0, Score(0.95, 2, "rule"), 2)]))
    assert placed == [Placed(True, 0, 6, None)]  # rescored: moves to the top
    want = [("d", 0.95), ("e", 0.9), ("b", 0.9), ("ü", 0.5), ("c", 0.5), ("a", 0.5)]
    assert run(store.top(0, 10)) == want
    assert run(store.top(2, 2)) == want[2:4] and run(store.top(9, 3)) == []
    assert run(store.rank_of("c")) == (4, 6) and run(store.rank_of("zz")) is None
    assert run(store.count_ranked()) == 6


def test_score_guard_indexes_tiers_and_retention(store: FeatureStore) -> None:
    run(store.apply([Item(ev(i, T0 + i, user=u), 1, i) for i, u in enumerate("abc")]))
    run(store.write_scores([ScoreWrite(u, 1, Score(0.1 * (i + 1), T0 + i, "rule"), T0 + i)
                            for i, u in enumerate("abc")]))
    # a sweep score older than the stored one is refused and does not touch the indexes
    stale = run(store.write_scores([ScoreWrite("c", 1, Score(0.01, T0, "rule"), T0 + 2)]))
    assert stale == [Placed(False, -1, 0, None)]
    assert run(store.user("c"))[1] == Score(0.1 * 3, T0 + 2, "rule")
    assert run(store.active_users(1, float("-inf"), T0 + 1)) == [("a", T0), ("b", T0 + 1)]
    assert run(store.active_users(1, T0, float("inf"))) == [("b", T0 + 1), ("c", T0 + 2)]
    low, churned = ALL_TIERS.index("low"), ALL_TIERS.index("churned")
    run(store.write_tiers([TierChange(u, 1, None, TierRecord(low, T0, 0, 0), T0)
                           for u in "abc"], {}))
    assert run(store.tier_counts()) == {"low": 3}
    run(store.write_tiers([TierChange("a", 1, low, TierRecord(churned, T0 + 5, 0, 1), T0)],
                          {"alerts": 1}))
    assert run(store.tier_counts()) == {"low": 2, "churned": 1}
    assert run(store.tier_of("a")) == TierRecord(churned, T0 + 5, 0, 1)
    assert run(store.rank_of("a")) is None and run(store.count_ranked()) == 2
    assert [u for u, _ in run(store.active_users(1, float("-inf"), float("inf")))] == ["b", "c"]
    assert run(store.stats())["alerts"] == 1
    assert run(store.retire(1, T0)) == 0 and run(store.retire(1, T0 + 1)) == 1
    assert run(store.user("a")) == (None, None) and run(store.tier_counts()) == {"low": 2}
    assert run(store.last_events(["a", "b"])) == [None, T0 + 1]


def test_crossings_keep_a_history_per_user_and_a_bounded_feed(
        store: FeatureStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The newest HISTORY crossings per user (oldest first) in the user view, the newest
    FEED of all in the feed (newest first, filtered by the tier entered), written with
    the tier changes; retirement drops the history."""
    import state.memory_store
    import state.redis_scores

    monkeypatch.setattr(state.redis_scores, "FEED", 5)
    if isinstance(store, MemoryFeatureStore):
        monkeypatch.setattr(state.memory_store, "FEED", 5)
        store = MemoryFeatureStore()
    run(store.apply([Item(ev(0, T0, user="a"), 0, 0), Item(ev(1, T0, user="b"), 0, 1)]))
    low, high, crit = (ALL_TIERS.index(t) for t in ("low", "high", "critical"))
    made = []
    for i in range(7):
        uid = "ab"[i % 2]
        frm, to = (low, high) if i % 3 else (high, crit)
        c = Crossing(uid, frm, to, 0.1 * i + 1 / 3, T0 + i * 1000)
        made.append(c)
        run(store.write_tiers([TierChange(uid, 0, frm, TierRecord(to, T0 + i, 0, 1), T0, c)],
                              {}))
    feed = run(store.alerts_feed(10))
    assert feed == made[::-1][:5]  # bounded: the newest 5, newest first
    assert run(store.alerts_feed(2)) == made[::-1][:2]
    assert run(store.alerts_feed(10, "critical")) == [c for c in made[::-1][:5] if c.to == crit]
    view = run(store.user_view("a"))
    assert view is not None and view.history == tuple(c for c in made if c.user_id == "a")[-4:]
    assert len(view.history) == 4  # HISTORY
    assert run(store.user_view("b")).history == tuple(c for c in made if c.user_id == "b")


def test_snapshots_population_and_clocks(store: FeatureStore) -> None:
    from core.features import FEATURE_NAMES

    n = len(FEATURE_NAMES)
    rows = [("b", [2.0] * n), ("a", [0.5 + i for i in range(n)])]
    run(store.put_snapshots(2, DAY_MS, rows))
    run(store.put_snapshots(3, DAY_MS, [("z", [4.0] * n)]))
    assert run(store.snapshots(2, DAY_MS)) == sorted(rows)
    users, means = run(store.population())
    assert users == 3 and means["n_events_7d"] == (2.0 + 0.5 + 4.0) / 3
    # snapshots with the BG/NBD inputs (20 columns) next to ones without
    wide = [("w", [1.0] * n + [1.0, 0.25, 0.5])]
    run(store.put_snapshots(4, DAY_MS, wide))
    assert run(store.snapshots(4, DAY_MS)) == wide
    users, means = run(store.population())
    assert users == 4 and means["n_events_7d"] == (2.0 + 0.5 + 4.0 + 1.0) / 4
    assert (means["bg_customer"], means["bg_p_alive"]) == (1.0, 0.25)  # partition 4 only
    run(store.finish_anchor(2, 31 * DAY_MS, DAY_MS, {"released": 2}))
    assert run(store.snapshots(2, DAY_MS)) == [] and run(store.stats()) == {"released": 2}
    run(store.set_clock("s:2", 5))
    run(store.set_clock("s:2", 4))  # clocks only move forwards
    assert run(store.clock()) == {"a:2": 31 * DAY_MS, "s:2": 5}


def test_retired_customers_are_archived_for_the_value_fit(store: FeatureStore) -> None:
    """p bought on days 0, 2 and 7; q and s once on day 1 (the same summary); r never.
    Retiring all four deletes them and leaves the three customers' BG/NBD summaries."""
    d0 = T0 // DAY_MS
    log = [("p", 0, "purchase"), ("q", 1, "purchase"), ("s", 1, "purchase"), ("p", 2, "purchase"),
           ("r", 3, "view"), ("p", 7, "purchase"), ("p", 8, "view")]
    run(store.apply([Item(ev(i, T0 + d * DAY_MS, user=u, event_type=kind, price=5.0), 2, i)
                     for i, (u, d, kind) in enumerate(log)]))
    users = sorted({u for u, _, _ in log})
    last = {"p": 8, "q": 1, "r": 3, "s": 1}
    run(store.write_scores([ScoreWrite(u, 2, Score(0.5, T0 + last[u] * DAY_MS, "rule"),
                                       T0 + last[u] * DAY_MS) for u in users]))
    churned = ALL_TIERS.index("churned")
    run(store.write_tiers([TierChange(u, 2, None, TierRecord(churned, T0, 0, 0),
                                      T0 + last[u] * DAY_MS) for u in users], {}))
    assert run(store.retired_customers()) == {}
    assert run(store.retire(2, T0 + 2 * DAY_MS)) == 2  # q and s
    assert run(store.retire(2, T0 + 9 * DAY_MS)) == 2  # p and r
    assert run(store.retired_customers()) == {f"0:0:{d0 + 1}": 2, f"2:7:{d0}": 1}
    assert all(run(store.user(u)) == (None, None) for u in users)
