"""Time without traffic (core/time_policy.py), on both stores (memory and a real Redis):
an idle partition follows the moving ones, and with the wall clock silent users rise in
risk, churn and are labelled with no traffic at all. Labels equal a brute force of
docs/design.md section 5's rules over the events."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence

from core.labels import DAY_MS
from core.tiers import ALL_TIERS, AlertGate, TierPolicy
from core.time_policy import IdleTracker, targets
from state.store import FeatureStore
from stream.anchors import Anchors, Release
from stream.worker.live import Live
from stream.worker.processor import BatchProcessor, DeadLetter, Record
from stream.worker.sweeper import Sweeper
from tests.integration.test_store_backends import run, store  # noqa: F401 (the fixture)

H = 3  # days
T0 = 20_000 * DAY_MS


def _parts(store: FeatureStore) -> tuple[BatchProcessor, Sweeper, list[dict], list[dict]]:  # noqa: F811
    alerts: list[dict] = []
    training: list[dict] = []

    async def to_alerts(msgs: Sequence[tuple[bytes, bytes]]) -> None:
        alerts.extend(json.loads(v) for _, v in msgs)

    async def to_training(msgs: Sequence[Release]) -> None:
        training.extend(json.loads(r.message()) for r in msgs)

    async def to_dlq(dead: Sequence[DeadLetter]) -> None:
        raise AssertionError(dead)

    live = Live(store, to_alerts, TierPolicy(margin=0.0), AlertGate(per_day=10), H)
    proc = BatchProcessor(store, to_dlq, churn_horizon_days=H, live=live,
                          anchors=Anchors(store, to_training, H, 1.0))
    sweeper = Sweeper(store, live, proc.lock, H, chunk=2, swept=proc.swept)
    proc.catch_up = sweeper.catch_up
    return proc, sweeper, alerts, training


def _record(p: int, off: int, user: str, t: int) -> Record:
    body = {"event_id": f"{p}-{off}", "user_id": user, "event_type": "view", "event_time": t}
    return Record(p, off, user.encode(), json.dumps(body).encode())


def brute_labels(events: list[tuple[int, str, int]], partition: int, last_anchor: int
                 ) -> set[tuple[str, int, int]]:
    """(user, anchor, label) of every snapshot of ``partition`` released by the time its
    anchors reach ``last_anchor``: users with an event in (A - H, A], label 1 when none
    in (A, A + H]; anchors are the midnights after the partition's first event."""
    mine = [(u, t) for p, u, t in events if p == partition]
    first = min(t for _, t in mine)
    out = set()
    a = first - first % DAY_MS + DAY_MS
    while a + H * DAY_MS <= last_anchor:
        for u in {u for u, t in mine if a - H * DAY_MS < t <= a}:
            back = any(a < t <= a + H * DAY_MS for v, t in mine if v == u)
            out.add((u, a, 0 if back else 1))
        a += DAY_MS
    return out


def test_an_idle_partition_follows_the_moving_ones(store: FeatureStore) -> None:  # noqa: F811
    """Partition 1's users stop on day 2 while partition 0 goes on to day 12: after the
    idle timeout partition 1's anchors follow partition 0's watermark, so its users are
    swept, churned and labelled; with the timeout off they never are."""
    events = sorted([(0, "a", T0 + d * DAY_MS + 3_600_000) for d in range(13)]
                    + [(1, "x", T0 + d * DAY_MS + 7_200_000) for d in (0, 1)]
                    + [(1, "y", T0 + d * DAY_MS + 5_000_000) for d in (0, 1, 2)],
                    key=lambda e: e[2])

    def drive(idle_seconds: float) -> tuple[list[dict], list[dict], Sweeper]:
        proc, sweeper, alerts, training = _parts(store)
        tracker = IdleTracker(idle_seconds)

        async def go() -> None:
            offsets = {0: 0, 1: 0}
            for p, u, t in events:  # one simulated minute of wall time per event
                now = (t - T0) / DAY_MS * 60
                await proc.process([_record(p, offsets[p], u, t)])
                offsets[p] += 1
                tracker.observe(await store.watermarks(), now)
                for q, goal in targets(tracker, {0, 1}, await store.watermarks(), now).items():
                    await proc.advance(q, goal)
                for q, a in await sweeper.due({0, 1}):
                    await sweeper.sweep(q, a)

        run(go())
        return alerts, training, sweeper

    alerts, training, _ = drive(idle_seconds=90)  # idle after 1.5 simulated days
    clock = run(store.clock())
    # partition 1 followed partition 0's watermark (day 12, 01:00): its last anchor is day 12
    assert clock["a:1"] == T0 + 12 * DAY_MS and clock["s:1"] == T0 + 12 * DAY_MS
    got = {(m["user_id"], m["t"], m["label"]) for m in training if m["partition"] == 1}
    want = brute_labels(events, 1, T0 + 12 * DAY_MS)
    assert got == want and {g[2] for g in got} == {0, 1} and len(got) >= 6
    for u in ("x", "y"):
        assert any(a["user_id"] == u and a["to"] == "churned" for a in alerts), u
    assert run(store.tier_counts())["churned"] == 2
    assert {(m["user_id"], m["t"], m["label"]) for m in training if m["partition"] == 0} \
        == brute_labels(events, 0, T0 + 12 * DAY_MS)


def test_without_the_idle_timeout_an_idle_partition_stays_put(store: FeatureStore) -> None:  # noqa: F811
    proc, _, _, training = _parts(store)

    async def go() -> None:
        for off, d in enumerate(range(8)):
            await proc.process([_record(0, off, "a", T0 + d * DAY_MS + 1)])
        await proc.process([_record(1, 0, "x", T0 + 5)])
        tracker = IdleTracker(0)
        tracker.observe(await store.watermarks(), 0.0)
        assert targets(tracker, {0, 1}, await store.watermarks(), 1e9) == {}

    run(go())
    assert run(store.clock())["a:1"] == T0 and not [m for m in training if m["partition"] == 1]


def test_wall_clock_silent_users_rise_churn_and_are_labelled(store: FeatureStore) -> None:  # noqa: F811
    """CHURN_CLOCK=wall with a fake wall clock: two users on day 0, then no traffic at
    all; each wall-clock day moves the anchors (less the grace), the sweeps rescore both
    as their silence grows, and both churn at their churn anchor and are labelled 1."""
    proc, sweeper, alerts, training = _parts(store)
    grace = 5 * 60_000
    seen: dict[str, list[tuple[int, float]]] = {"b": [], "c": []}

    async def go() -> None:
        await proc.process([_record(0, 0, "b", T0 + 3_600_000),
                            _record(0, 1, "c", T0 + 9_000_000)])
        for hour in range(1, 24 * 8, 6):  # a week of wall time, every 6 hours
            wall = T0 + hour * 3_600_000
            for q, goal in targets(None, {0}, await store.watermarks(), 0.0, wall,
                                   grace).items():
                await proc.advance(q, goal)
            for q, a in await sweeper.due({0}):
                await sweeper.sweep(q, a)
            for u in seen:
                view = await store.user_view(u)
                if view is not None and view.score is not None and (
                        not seen[u] or seen[u][-1][0] != view.score.as_of_ms):
                    seen[u].append((view.score.as_of_ms, view.score.risk))

    run(go())
    # rescored at every midnight (the grace passed) while silent, churned at day 4
    assert [t for t, _ in seen["b"]] == [T0 + 3_600_000, *(T0 + d * DAY_MS for d in (1, 2, 3, 4))]
    risks = [r for _, r in seen["b"]][:-1]
    assert all(r1 < r2 for r1, r2 in itertools.pairwise(risks))
    for u in ("b", "c"):
        tier = run(store.tier_of(u))
        assert tier is not None and ALL_TIERS[tier.tier] == "churned", u
        assert any(a["user_id"] == u and a["to"] == "churned" for a in alerts)
    assert run(store.clock())["a:0"] == T0 + 7 * DAY_MS  # day 7's midnight + grace passed
    got = {(m["user_id"], m["t"], m["label"]) for m in training}
    events = [(0, "b", T0 + 3_600_000), (0, "c", T0 + 9_000_000)]
    assert got == brute_labels(events, 0, T0 + 7 * DAY_MS) and got
    assert {g[2] for g in got} == {1}
