"""How one valid event changes a user's state: the reference semantics of the Redis script.

``state/lua/apply_event.lua`` performs exactly these steps, with the same float
operations, inside Redis; the in-memory feature store uses this module. A test
runs one suite over both and demands identical results.

Rules (docs/design.md section 4):

1. Redelivery: an event whose (partition, offset) is not after the last one
   applied for this user is a re-read after a crash and changes nothing.
2. Dedupe: an event whose id was applied to a day bucket still inside the
   horizon of the user's newest event is a duplicate and changes nothing.
3. An event whose day is inside the horizon (``day(newest) - 29`` or later,
   ``newest`` including this event) is added to its day's bucket; if it is
   older than the user's newest event it is also counted as late.
4. An older event only updates lifetime fields (first event, last purchase,
   the set of purchase days) and is counted as ``late_outside``. It does not take part in brand
   switching and is not remembered for dedupe (re-applying it changes nothing).
   Its spend is not counted: it could not be deduplicated.
5. Customer value: a purchase applied to a day bucket that had none counts a
   purchase day with known spend; its price (if any) adds to their spend.

>>> from core.events import Event
>>> st = {}
>>> ev = Event(event_id="a", user_id="u", event_type="purchase", event_time=5, price=2.0)
>>> apply_event(st, ev, partition=0, offset=0), apply_event(st, ev, partition=0, offset=1)
(0, 3)
>>> apply_event(st, ev, partition=0, offset=1)
4
>>> st["u"].state.days[0].spend
2.0
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.events import Event, fingerprint
from core.features import DAY_MS, HORIZON_DAYS, DayBucket, UserState
from core.monthly import Marks, add, mark, month_of_day

APPLIED, LATE, LATE_OUTSIDE, DUPLICATE, REDELIVERED = 0, 1, 2, 3, 4
STATUS_NAMES = ("applied", "late", "late_outside", "duplicate", "redelivered")


@dataclass(slots=True)
class MemoryUser:
    """A user's state plus the bookkeeping that the Redis hash also keeps."""

    state: UserState
    seen: dict[bytes, int] = field(default_factory=dict)  # fingerprint -> day
    seen_on: dict[int, list[bytes]] = field(default_factory=dict)  # day -> fingerprints
    partition: int = -1
    offset: int = -1
    months: Marks | None = None  # the monthly figures' marks (core/monthly.py)


def apply_event(users: dict[str, MemoryUser], ev: Event, partition: int, offset: int,
                horizon_days: int = HORIZON_DAYS, months: dict[str, int] | None = None) -> int:
    """Apply ``ev`` to ``users`` (a dict of :class:`MemoryUser`) and return its status;
    with ``months``, count a counted event in the monthly figures (core/monthly.py)."""
    t = ev.time_ms
    day = t // DAY_MS
    mu = users.get(ev.user_id)
    if mu is not None and mu.partition == partition and offset <= mu.offset:
        return REDELIVERED
    fp = fingerprint(ev.event_id)
    if mu is not None:
        old_min_day = mu.state.last_ms // DAY_MS - horizon_days + 1
        seen_day = mu.seen.get(fp)
        if seen_day is not None and seen_day >= old_min_day:
            mu.partition, mu.offset = partition, offset
            return DUPLICATE
    else:
        mu = MemoryUser(UserState(first_ms=t, last_ms=t))
        users[ev.user_id] = mu
    st = mu.state
    mu.partition, mu.offset = partition, offset
    late = t < st.last_ms
    new_last = max(st.last_ms, t)
    min_day = new_last // DAY_MS - horizon_days + 1
    if new_last // DAY_MS > st.last_ms // DAY_MS:
        _prune(mu, min_day)
    st.first_ms = min(st.first_ms, t)
    st.last_ms = new_last
    is_purchase = ev.event_type == "purchase"
    if is_purchase:
        st.last_purchase_ms = max(st.last_purchase_ms, t)
        st.purchase_days.add(day)
    if day < min_day:
        return LATE_OUTSIDE
    mu.seen[fp] = day
    if months is not None and day not in st.days:  # as apply_event.lua: a new day's event
        mu.months, changes = mark(mu.months, month_of_day(day))
        add(months, changes)
    on = mu.seen_on.get(day)
    if on is None:
        mu.seen_on[day] = [fp]
    else:
        on.append(fp)
    _add_to_day(st, day, ev, is_purchase)
    return LATE if late else APPLIED


def _prune(mu: MemoryUser, min_day: int) -> None:
    """Drop the day buckets and dedupe records before ``min_day`` (the horizon moved)."""
    st = mu.state
    for d in [d for d in st.days if d < min_day]:
        del st.days[d]
    for d in [d for d in mu.seen_on if d < min_day]:  # at most 30 days to look at
        for k in mu.seen_on.pop(d):
            if mu.seen.get(k) == d:
                del mu.seen[k]


def _add_to_day(st: UserState, day: int, ev: Event, is_purchase: bool) -> None:
    """Count ``ev`` in its day's bucket (and the valued purchase days, brand switches)."""
    b = st.days.get(day)
    if b is None:
        b = st.days[day] = DayBucket()
    b.n += 1
    if is_purchase:
        if not b.purchases:
            st.value_n += 1
        if ev.price is not None:
            st.value_sum = st.value_sum + ev.price
        b.purchases += 1
        if ev.price is not None:
            b.spend = b.spend + ev.price
    elif ev.event_type == "cart":
        b.carts += 1
    if ev.price is not None:
        b.add_price(ev.price)
    if ev.brand is not None:
        b.brands[ev.brand] = b.brands.get(ev.brand, 0) + 1
        if st.last_brand is not None and st.last_brand != ev.brand:
            b.switches += 1
        st.last_brand = ev.brand
