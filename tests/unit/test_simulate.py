"""The simulator: deterministic, time-ordered, consistent with its truth file, and
readable by the replay path in both output layouts."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from core.events import parse_event
from offline.replay import read_rows, validate_row
from offline.simulate import DAY_MS, START_MS, Population

USERS, DAYS = 3000, 90


def _events(pop: Population) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in pop.jsonl()]


def test_deterministic_and_in_time_order() -> None:
    a = list(Population(300, 40, seed=5).jsonl())
    assert a == list(Population(300, 40, seed=5).jsonl())
    assert a != list(Population(300, 40, seed=6).jsonl())
    times = [json.loads(x)["event_time"] for x in a]
    assert times == sorted(times)
    assert len({json.loads(x)["event_id"] for x in a}) == len(a)


def test_events_agree_with_the_truth() -> None:
    pop = Population(USERS, DAYS, seed=11)
    truth = {t.user_id: t for t in pop.truth()}
    by_user: dict[str, list[dict]] = defaultdict(list)  # type: ignore[type-arg]
    for ev in _events(pop):
        by_user[ev["user_id"]].append(ev)
    churned = quiet_back = 0
    for uid, evs in by_user.items():
        t = truth[uid]
        assert evs[0]["event_time"] >= t.arrival_ms
        if t.churn_ms is not None:  # nothing after the churn moment (a session may finish)
            churned += 1
            assert evs[-1]["event_time"] < t.churn_ms + DAY_MS
        if t.quiet_from_ms is not None and t.quiet_until_ms is not None:
            lo, hi = t.quiet_from_ms, t.quiet_until_ms
            # no session starts inside the quiet spell (whole days)
            starts = {e["session_id"]: e["event_time"] for e in reversed(evs)}
            assert not any(lo + DAY_MS <= s < hi - DAY_MS for s in starts.values())
            quiet_back += any(e["event_time"] >= hi for e in evs)
        # the funnel within a session: views first, then cart, then purchase or removal
        sessions: dict[str, list[str]] = defaultdict(list)
        for e in evs:
            sessions[e["session_id"]].append(e["event_type"])
        for kinds in sessions.values():
            nv = kinds.count("view")
            assert kinds[:nv] == ["view"] * nv and nv >= 1
            assert kinds[nv:] in ([], ["cart"], ["cart", "purchase"], ["cart", "remove_from_cart"])
    assert 0.2 * len(by_user) < churned < 0.7 * len(by_user), churned
    assert quiet_back > 20


def test_declining_users_fade_before_they_stop() -> None:
    pop = Population(USERS, DAYS, seed=2)
    truth = {t.user_id: t for t in pop.truth()}
    early = late = 0
    for ev in _events(pop):
        t = truth[ev["user_id"]]
        if t.churn_ms is None or t.decline_ms is None or t.churn_ms - t.decline_ms < 20 * DAY_MS:
            continue
        mid = (t.decline_ms + t.churn_ms) // 2
        if t.decline_ms - 10 * DAY_MS <= ev["event_time"] < t.decline_ms:
            early += 1
        elif mid <= ev["event_time"] < mid + 10 * DAY_MS:
            late += 1
    assert late < 0.6 * early, (early, late)


def test_weekly_seasonality() -> None:
    per_weekday = [0] * 7
    for ev in _events(Population(2000, 70, seed=4)):
        per_weekday[(ev["event_time"] // DAY_MS + 3) % 7] += 1  # Monday = 0
    assert min(per_weekday[5:]) > 1.1 * max(per_weekday[1:3])


def test_both_layouts_replay(tmp_path: Path) -> None:
    pop = Population(200, 30, seed=9)
    (tmp_path / "sim.csv").write_bytes(b"".join(pop.csv()))
    (tmp_path / "sim.jsonl").write_bytes(b"".join(pop.jsonl()))
    allowed = frozenset({"view", "cart", "remove_from_cart", "purchase"})
    csv_rows = [validate_row(b, allowed) for _, b, _ in read_rows(tmp_path / "sim.csv")]
    js_rows = [validate_row(b, allowed) for _, b, _ in read_rows(tmp_path / "sim.jsonl")]
    assert len(csv_rows) == len(js_rows) > 500
    for c, j in zip(csv_rows, js_rows, strict=True):
        assert c.user_id == j.user_id and c.event_type == j.event_type  # type: ignore[union-attr]
        assert c.time_ms == j.time_ms // 1000 * 1000  # type: ignore[union-attr]
        assert c.price == j.price and c.brand == j.brand  # type: ignore[union-attr]
    assert parse_event(next(pop.jsonl()), allowed).time_ms >= START_MS  # type: ignore[union-attr]


def test_paced_output_follows_the_clock() -> None:
    import time

    from offline.simulate import paced

    pop = Population(100, 10, seed=3)
    speedup = 10 * DAY_MS / 1000 / 0.6  # ten simulated days in about 0.6 s
    started = time.monotonic()
    lines = list(paced(pop, speedup))
    elapsed = time.monotonic() - started
    assert lines == list(pop.jsonl())
    last = json.loads(lines[-1])["event_time"]
    assert elapsed >= (last - START_MS) / 1000 / speedup - 0.05  # never ahead of the clock
