"""Independent reference for the feature contract (docs/design.md section 4), for tests only.

Written from the contract, not from the production code: it keeps every
accepted event in a list and recomputes each feature from scratch by filtering
that list (no daily buckets, no running moments; exact ``statistics.pstdev``).
"""

from __future__ import annotations

import csv
import itertools
import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

DAY = 86_400_000
TYPES = frozenset({"view", "cart", "remove_from_cart", "purchase"})


@dataclass
class RefEvent:
    event_id: str
    user_id: str
    event_type: str
    t: int
    price: float | None
    brand: str | None


@dataclass
class RefUser:
    first: int
    newest: int
    last_purchase: int | None = None
    kept: list[tuple[RefEvent, bool]] = field(default_factory=list)  # (event, brand switch)
    ids: dict[str, int] = field(default_factory=dict)  # id -> day of kept events
    prev_brand: str | None = None
    purchase_days: set[int] = field(default_factory=set)  # every accepted purchase's day


class Reference:
    """Feed valid events in arrival order; ask for features of a user at a time."""

    def __init__(self) -> None:
        self.users: dict[str, RefUser] = {}
        self.counts = Counter[str]()

    def add(self, e: RefEvent) -> str:
        u = self.users.get(e.user_id)
        if u is not None:
            oldest_kept_day = u.newest // DAY - 29
            if e.event_id in u.ids and u.ids[e.event_id] >= oldest_kept_day:
                self.counts["duplicate"] += 1
                return "duplicate"
        else:
            u = self.users[e.user_id] = RefUser(first=e.t, newest=e.t)
        late = e.t < u.newest
        u.newest = max(u.newest, e.t)
        u.first = min(u.first, e.t)
        if e.event_type == "purchase":
            u.last_purchase = e.t if u.last_purchase is None else max(u.last_purchase, e.t)
            u.purchase_days.add(e.t // DAY)
        # drop remembered ids that fell out of the horizon
        horizon_start = u.newest // DAY - 29
        u.ids = {k: d for k, d in u.ids.items() if d >= horizon_start}
        if e.t // DAY < horizon_start:
            self.counts["late_outside"] += 1
            return "late_outside"
        switch = False
        if e.brand is not None:
            switch = u.prev_brand is not None and u.prev_brand != e.brand
            u.prev_brand = e.brand
        u.kept.append((e, switch))
        u.ids[e.event_id] = e.t // DAY
        status = "late" if late else "applied"
        self.counts[status] += 1
        return status

    def features(self, user_id: str, now: int) -> dict[str, float]:
        u = self.users[user_id]
        today = now // DAY

        def within(days: int) -> list[tuple[RefEvent, bool]]:
            return [(e, s) for e, s in u.kept if today - days < e.t // DAY <= today]

        w30, w15, w7 = within(30), within(15), within(7)
        n30, n15, n7 = len(w30), len(w15), len(w7)
        purchases = [e for e, _ in w30 if e.event_type == "purchase"]
        carts = sum(1 for e, _ in w30 if e.event_type == "cart")
        prices = [e.price for e, _ in w30 if e.price is not None]
        brands = Counter(e.brand for e, _ in w30 if e.brand is not None)
        days = sorted({e.t // DAY for e, _ in w30})
        if len(days) >= 3:
            gaps = [b - a for a, b in itertools.pairwise(days)]
            regularity = statistics.pstdev(gaps) / statistics.mean(gaps)
        else:
            regularity = 0.0
        return {
            "n_events_7d": n7, "n_events_15d": n15, "n_events_30d": n30,
            "active_days_30d": len(days),
            "n_purchase_30d": len(purchases),
            "total_spend_30d": sum(e.price or 0.0 for e in purchases),
            "purchase_ratio": len(purchases) / n30 if n30 else 0.0,
            "activity_ratio_15d": n15 / n30 if n30 else 0.0,
            "activity_trend": (n7 - (n15 - n7) * 7 / 8) / max(1, n15),
            "days_since_last_event": (now - u.newest) / DAY,
            "days_since_last_purchase": (now - u.last_purchase) / DAY
            if u.last_purchase is not None else 365.0,
            "tenure_days": (now - u.first) / DAY,
            "visit_regularity": regularity,
            "price_volatility": statistics.pstdev(prices) if prices else 0.0,
            "brand_concentration_ratio": max(brands.values()) / sum(brands.values())
            if brands else 0.0,
            "brand_switch_count_30d": sum(1 for _, s in w30 if s),
            "cart_abandon_ratio": (carts - min(carts, len(purchases))) / max(1, carts),
        }

    def long_range(self, user_id: str, now: int) -> dict[str, float]:
        """The long-range inputs (docs/design.md section 4, core/long_range.py's table) from the
        set of purchase days and the kept purchases, with exact ``statistics``."""
        u = self.users[user_id]
        days = sorted(u.purchase_days)
        today = now // DAY
        gaps = [b - a for a, b in itertools.pairwise(days)]
        kept = [e for e, _ in u.kept if e.event_type == "purchase"]
        valued = len({e.t // DAY for e in kept})
        return {
            "purchase_days_total": len(days),
            **{f"purchase_days_{w}d": sum(1 for d in days if today - w < d <= today)
               for w in (90, 180, 365)},
            "days_since_first_purchase": today - days[0] if days else 0,
            "purchase_gap_mean_days": statistics.mean(gaps) if gaps else 0.0,
            "purchase_gap_cv": statistics.pstdev(gaps) / statistics.mean(gaps)
            if len(gaps) >= 2 else 0.0,
            "purchase_recency_vs_gap": (today - days[-1]) / statistics.mean(gaps)
            if gaps else 0.0,
            "spend_per_purchase_day": math.fsum(e.price or 0.0 for e in kept) / valued
            if valued else 0.0,
        }

    def value_summary(self, user_id: str, now: int) -> tuple[int, int, int, int, float] | None:
        """(x, t_x, T, n, spend) at ``now`` from the issue-6 contract, or None (no purchase).

        x = distinct purchase days after the first, t_x and T = whole days from the first
        purchase day to the last purchase day and to day(now); n and spend = the purchase
        days whose purchases were all kept (not late beyond the horizon) and their spend.
        """
        u = self.users[user_id]
        if not u.purchase_days:
            return None
        first = min(u.purchase_days)
        kept = [e for e, _ in u.kept if e.event_type == "purchase"]
        return (len(u.purchase_days) - 1, max(u.purchase_days) - first, now // DAY - first,
                len({e.t // DAY for e in kept}), math.fsum(e.price or 0.0 for e in kept))


def close(a: float, b: float, rel: float = 1e-9) -> bool:
    """Equal to ``rel`` relative; exact zeros must match to 1e-12 absolute."""
    return abs(a - b) <= rel * max(abs(a), abs(b)) or abs(a - b) <= 1e-12


def mismatches(got: dict[str, float], want: dict[str, float]) -> dict[str, tuple[float, float]]:
    if set(got) != set(want):
        return {"<names>": (len(got), len(want))}
    return {k: (got[k], want[k]) for k in want if not close(got[k], float(want[k]))}


def _ms(text: str) -> int | None:
    """Event time of the public CSV layout or RFC 3339 with a zone, in epoch ms."""
    for fmt in ("%Y-%m-%d %H:%M:%S UTC", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        try:
            dt = datetime.strptime(text, fmt)
        except ValueError:
            continue
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1000)
    return None


def read_raw_csv(path: str) -> list[RefEvent | None]:
    """Every data row of a raw CSV log, in file order: the event, or None if invalid.

    Written from docs/design.md section 3 without the production parser: UTF-8, one cell
    per header column, a known event type, a non-blank user id of at most 128
    characters, a parseable time with a zone, a finite non-negative price if any,
    text fields of at most 256 characters. The raw line is the event id.
    """
    out: list[RefEvent | None] = []
    with open(path, "rb") as fh:
        header = fh.readline().decode().strip().split(",")
        for raw in fh:
            line = raw.rstrip(b"\r\n")
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                out.append(None)
                continue
            cells = next(csv.reader([text]))
            if len(cells) != len(header):
                out.append(None)
                continue
            row = dict(zip(header, cells, strict=True))
            t = _ms(row["event_time"])
            price: float | None = None
            ok = (t is not None and row["event_type"] in TYPES
                  and row["user_id"].strip() != "" and len(row["user_id"]) <= 128
                  and all(len(row[c]) <= 256 for c in ("brand", "product_id", "user_session")))
            if ok and row["price"] != "":
                try:
                    price = float(row["price"])
                except ValueError:
                    ok = False
                else:
                    ok = math.isfinite(price) and price >= 0
            out.append(RefEvent(text, row["user_id"], row["event_type"], t, price,
                                row["brand"] or None) if ok and t is not None else None)
    return out


def ref_event_of_json(value: bytes) -> RefEvent:
    """An event as the ``events`` topic carries it (canonical JSON, time in epoch ms)."""
    import json

    body = json.loads(value)
    price = body.get("price")
    return RefEvent(body["event_id"], body["user_id"], body["event_type"],
                    int(body["event_time"]), None if price is None else float(price),
                    body.get("brand"))


def reference_examples(partitions: dict[int, list[RefEvent]], horizon_days: int, rate: float,
                       warmup_days: int = 0, until: dict[int, int] | None = None,
                       ) -> dict[tuple[int, int, str], tuple[int, dict[str, float]]]:
    """Training examples the live path must release, from docs/design.md section 5 alone.

    Each partition is replayed in arrival order with its own event-time clock. When an
    event passes UTC midnights, each midnight A is an anchor before that event is
    applied: users whose newest event is in (A - H, A] and who are sampled get a
    snapshot (features at A from the events seen so far); snapshots with t + H <= A are
    released. A snapshot is settled as retained by any event in (t, t + H] seen before
    its release. No snapshot is taken at anchors earlier than ``warmup_days`` after the
    midnight that starts the partition's clock. Returns {(partition, t, user): (label,
    features)}; features: the 17 and the long-range inputs. ``until``: a partition whose
    clock moved on without events (an idle partition, the wall clock) runs, after its
    events, the anchors an event at ``until[p]`` would.
    """
    from core.labels import sampled  # the sample is part of the contract, not the logic

    h = horizon_days * DAY
    out: dict[tuple[int, int, str], tuple[int, dict[str, float]]] = {}
    for p, events in partitions.items():
        ref = Reference()
        pending: list[list] = []  # [user, t, features, returned]
        clock: int | None = None
        start = 0
        tail = [RefEvent("", "", "", until[p], None, None)] if until and p in until else []
        for e in [*events, *tail]:
            if clock is None:
                clock = start = e.t - e.t % DAY
            while e.t > clock + DAY:
                a = clock + DAY
                for uid, u in ref.users.items():
                    if a - h < u.newest <= a and sampled(uid, a, rate) \
                            and a >= start + warmup_days * DAY:
                        pending.append([uid, a, {**ref.features(uid, a),
                                                 **ref.long_range(uid, a)}, False])
                for snap in [s for s in pending if s[1] + h <= a]:
                    out[(p, snap[1], snap[0])] = (0 if snap[3] else 1, snap[2])
                    pending.remove(snap)
                clock = a
            if not e.event_id:  # the clock's tail: no event
                break
            ref.add(e)
            for snap in pending:
                if snap[0] == e.user_id and snap[1] < e.t <= snap[1] + h:
                    snap[3] = True
    return out


def monthly_counters(months_of: dict[str, set[int]], cohort_months: int = 12
                     ) -> dict[str, int]:
    """The monthly figures' counters (core/monthly.py's layout) straight from each user's
    set of active months: a:<m> active, r:<m> active in m - 1 and m, c:<m>:<k> first
    active in m and active in m + k (k < cohort_months)."""
    out: dict[str, int] = {}

    def inc(key: str) -> None:
        out[key] = out.get(key, 0) + 1

    for months in months_of.values():
        first = min(months)
        for m in months:
            inc(f"a:{m}")
            if m - 1 in months:
                inc(f"r:{m}")
            if m - first < cohort_months:
                inc(f"c:{first}:{m - first}")
    return out


def counted_months(items: list, statuses: list[int]) -> dict[str, set[int]]:  # type: ignore[type-arg]
    """Each user's calendar months (since 1970-01) of the events the features count
    (status applied or late), from the events and the statuses the store returned."""
    out: dict[str, set[int]] = {}
    for it, status in zip(items, statuses, strict=True):
        if status in (0, 1):
            out.setdefault(it.event.user_id, set()).add(month_index(it.event.time_ms))
    return out


def month_index(t_ms: int) -> int:
    """Calendar months since 1970-01 (UTC) of a time, by the standard library."""
    d = datetime.fromtimestamp(t_ms / 1000, UTC)
    return (d.year - 1970) * 12 + d.month - 1


def monthly_rows(months_of: dict[str, set[int]]) -> tuple[list[dict[str, object]],
                                                          dict[str, list[int]]]:
    """The monthly picture by its definitions, user by user (not from counters): per
    month active, new, retained, returning, churned, churn rate; the cohort table."""
    if not months_of:
        return [], {}
    lo = min(min(m) for m in months_of.values())
    hi = max(max(m) for m in months_of.values())
    rows = []
    for m in range(lo, hi + 1):
        act = [ms for ms in months_of.values() if m in ms]
        before = sum(1 for ms in months_of.values() if m - 1 in ms)
        churned = sum(1 for ms in months_of.values() if m - 1 in ms and m not in ms)
        rows.append({
            "month": f"{1970 + m // 12:04d}-{m % 12 + 1:02d}", "active": len(act),
            "new": sum(1 for ms in act if min(ms) == m),
            "retained": sum(1 for ms in act if m - 1 in ms),
            "returning": sum(1 for ms in act if min(ms) < m and m - 1 not in ms),
            "churned": churned, "churn_rate": churned / before if before else None})
    cohorts = {}
    for c in range(lo, hi + 1):
        members = [ms for ms in months_of.values() if min(ms) == c]
        if members:
            cohorts[f"{1970 + c // 12:04d}-{c % 12 + 1:02d}"] = [
                sum(1 for ms in members if c + k in ms) for k in range(min(12, hi - c + 1))]
    return rows, cohorts
