"""Feature math: property tests against the independent reference, and invariants."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from core.apply import DUPLICATE, LATE, LATE_OUTSIDE, STATUS_NAMES, MemoryUser, apply_event
from core.events import Event
from core.features import FEATURE_NAMES, DayBucket, UserState, features_at, window_aggregates
from core.long_range import LONG_RANGE_NAMES, long_range
from core.value import value_inputs
from tests.reference import DAY, Reference, RefEvent, mismatches

T0 = 1_600_000_000_000


@st.composite
def user_log(draw: st.DrawFn) -> list[Event]:
    """One user's events in arrival order: mostly forward in time, some late, some repeated."""
    n = draw(st.integers(1, 60))
    t = T0 + draw(st.integers(0, DAY))
    out: list[Event] = []
    for i in range(n):
        r = draw(st.integers(0, 99))
        if out and r < 8:  # exact duplicate of an earlier event
            out.append(draw(st.sampled_from(out)))
            continue
        if r < 20:  # late: somewhere in the past, possibly beyond the horizon
            when = t - draw(st.integers(0, 45 * DAY))
        else:
            t += draw(st.sampled_from([0, 1, 60_000, DAY // 3, DAY, 3 * DAY, 11 * DAY]))
            when = t
        price = draw(st.none() | st.sampled_from([0.0, 9.99, 10.0, 10.01, 120.0])
                     | st.floats(0, 5000, allow_nan=False))
        out.append(Event(event_id=f"e{i}", user_id="u", event_time=when, price=price,
                         event_type=draw(st.sampled_from(["view", "cart", "purchase",
                                                          "remove_from_cart"])),
                         brand=draw(st.none() | st.sampled_from(["a", "b", "c"]))))
    return out


def _run(evs: list[Event]) -> tuple[UserState, Reference, list[int]]:
    users: dict[str, MemoryUser] = {}
    ref = Reference()
    statuses = []
    for off, ev in enumerate(evs):
        status = apply_event(users, ev, 0, off)
        statuses.append(status)
        got = ref.add(RefEvent(ev.event_id, ev.user_id, ev.event_type, ev.time_ms, ev.price,
                               ev.brand))
        assert got == STATUS_NAMES[status]
    return users["u"].state, ref, statuses


@settings(max_examples=300, deadline=None)
@given(user_log(), st.integers(0, 40 * DAY))
def test_features_equal_reference(evs: list[Event], later: int) -> None:
    state, ref, _ = _run(evs)
    for now in (state.last_ms, state.last_ms + later):
        assert not mismatches(features_at(state, now), ref.features("u", now))


@settings(max_examples=300, deadline=None)
@given(user_log(), st.integers(0, 400 * DAY))
def test_value_inputs_equal_reference(evs: list[Event], later: int) -> None:
    """x, t_x, T and the known purchase spend (issue 6), under late events and duplicates."""
    state, ref, _ = _run(evs)
    for now in (state.last_ms, state.last_ms + later):
        agg = window_aggregates(state, now)
        want = ref.value_summary("u", now)
        got = value_inputs(agg)
        if want is None:
            assert got is None and agg.purchase_days == 0
            continue
        assert got is not None
        assert (got.x, got.t_x, got.T, got.n) == want[:4]
        assert math.isclose(got.spend, want[4], rel_tol=1e-12, abs_tol=1e-9)


@settings(max_examples=200, deadline=None)
@given(user_log(), st.integers(0, 40 * DAY))
def test_invariants(evs: list[Event], later: int) -> None:
    state, _, statuses = _run(evs)
    f = features_at(state, state.last_ms + later)
    assert tuple(f) == FEATURE_NAMES
    assert all(math.isfinite(v) for v in f.values())
    assert 0 <= f["n_events_7d"] <= f["n_events_15d"] <= f["n_events_30d"]
    assert f["active_days_30d"] <= min(30, f["n_events_30d"])
    for name in ("purchase_ratio", "activity_ratio_15d", "brand_concentration_ratio",
                 "cart_abandon_ratio"):
        assert 0 <= f[name] <= 1
    assert -7 / 8 <= f["activity_trend"] <= 1
    assert f["days_since_last_event"] == later / DAY
    assert f["tenure_days"] >= f["days_since_last_event"]
    assert len(state.days) <= 30  # bounded: the horizon prunes old buckets
    if later >= 30 * DAY:
        assert f["n_events_30d"] == 0 and f["price_volatility"] == 0
    # duplicates and lateness are classified, never silently merged
    assert statuses.count(DUPLICATE) <= len(evs) - 1
    assert all(s in (0, LATE, LATE_OUTSIDE, DUPLICATE) for s in statuses)


@given(st.lists(st.sampled_from([0.1, 0.2, 0.3, 1e6 + 0.1]), min_size=1, max_size=50))
def test_equal_prices_have_exactly_zero_volatility(prices: list[float]) -> None:
    same = [prices[0]] * len(prices)
    s = UserState(first_ms=0, last_ms=0)
    s.days[0] = DayBucket(n=len(same))
    for p in same:
        s.days[0].add_price(p)
    assert features_at(s)["price_volatility"] == 0.0


def test_regularity_and_switch_examples() -> None:
    evs = [Event(event_id=str(i), user_id="u", event_type="view", event_time=T0 + d * DAY,
                 brand=b) for i, (d, b) in enumerate([(0, "a"), (1, "b"), (3, "b"), (7, "a")])]
    state, _, _ = _run(evs)
    f = features_at(state)
    gaps = [1, 2, 4]
    mean = sum(gaps) / 3
    std = math.sqrt(sum((g - mean) ** 2 for g in gaps) / 3)
    assert f["visit_regularity"] == std / mean
    assert f["brand_switch_count_30d"] == 2 and f["brand_concentration_ratio"] == 0.5
    assert f["n_events_7d"] == 3  # the 7-day window is days 1..7: events on days 1, 3, 7


@st.composite
def buyer_log(draw: st.DrawFn) -> list[Event]:
    """A sparse buyer's events in arrival order: purchases weeks or months apart, some
    late (up to a year back, far beyond the 30-day horizon), some repeated."""
    n = draw(st.integers(1, 40))
    t = T0 + draw(st.integers(0, DAY))
    out: list[Event] = []
    for i in range(n):
        r = draw(st.integers(0, 99))
        if out and r < 10:
            out.append(draw(st.sampled_from(out)))
            continue
        if r < 25:
            when = t - draw(st.integers(0, 400 * DAY))
        else:
            t += draw(st.sampled_from([0, DAY // 2, DAY, 9 * DAY, 31 * DAY, 64 * DAY, 150 * DAY]))
            when = t
        out.append(Event(event_id=f"e{i}", user_id="u", event_time=when,
                         event_type=draw(st.sampled_from(["purchase", "purchase", "view"])),
                         price=draw(st.none() | st.floats(0, 500, allow_nan=False))))
    return out


@settings(max_examples=300, deadline=None)
@given(st.one_of(user_log(), buyer_log()), st.integers(0, 500 * DAY))
def test_long_range_inputs_equal_reference(evs: list[Event], later: int) -> None:
    """The long-range inputs (core.long_range) under late events and duplicates."""
    state, ref, _ = _run(evs)
    for now in (state.last_ms, state.last_ms + later):
        got = long_range(window_aggregates(state, now))
        assert tuple(got) == LONG_RANGE_NAMES
        assert not mismatches(got, ref.long_range("u", now))


def test_long_range_example() -> None:
    """Purchases on days 0, 10 and 40 (and a late one on day 5), seen at day 100."""
    evs = [Event(event_id=str(i), user_id="u", event_type="purchase", price=p,
                 event_time=T0 - T0 % DAY + d * DAY) for i, (d, p) in
           enumerate([(0, 10.0), (10, 20.0), (40, 30.0), (5, 99.0)])]
    state, _, _ = _run(evs)
    f = long_range(window_aggregates(state, state.last_ms + 60 * DAY))
    gaps = [5, 5, 30]
    mean = sum(gaps) / 3
    assert f["purchase_days_total"] == 4 and f["purchase_days_90d"] == 1
    assert f["purchase_days_180d"] == f["purchase_days_365d"] == 4
    assert f["days_since_first_purchase"] == 100 and f["purchase_gap_mean_days"] == mean
    assert f["purchase_gap_cv"] == math.sqrt(sum((g - mean) ** 2 for g in gaps) / 3) / mean
    assert f["purchase_recency_vs_gap"] == 60 / mean
    # the late purchase (day 5) is outside the 30-day horizon of day 40: its day counts,
    # its spend could not be deduplicated and does not
    assert f["spend_per_purchase_day"] == 20.0
