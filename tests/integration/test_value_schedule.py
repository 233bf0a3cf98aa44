"""The event-time value fit on a real Redis: each partition's rows of a fit day against
the independent reference, the learner's job (waits for every expected partition, fits
what they delivered exactly like a fit on the reference summaries, records the day's
version, drops the rows, a partial fit after the timeout), and the worker's side (waits
for a fit only while it can come; serves each partition its own day's fit)."""

from __future__ import annotations

import asyncio
import time
import uuid

import numpy as np
import pytest

from core import bgnbd
from core.features import DAY_MS
from core.settings import Settings
from services.embedded import EmbeddedServices
from state.keys import Keys
from state.redis_store import RedisFeatureStore, connect
from state.store import Commit
from state.value_model import ValueModel
from state.value_rows import ValueRows
from state.value_store import ValueStore
from stream.jobs.value_fit import fit_due, fit_summaries
from tests.integration.test_value_store import T0, _stream
from tests.reference import Reference, RefEvent

_LOOP = asyncio.new_event_loop()


def run(coro):  # type: ignore[no-untyped-def]
    return _LOOP.run_until_complete(coro)


@pytest.fixture
def world(services: EmbeddedServices):  # type: ignore[no-untyped-def]
    """150 users over 3 partitions, applied; the partitions' clocks started at day 0;
    users drop out (no event after a personal day), so that BG/NBD identifies drop-out."""
    yield from _world(services, dropout=True)


@pytest.fixture
def steady_world(services: EmbeddedServices):  # type: ignore[no-untyped-def]
    """The same users buying until the end: a fit that identifies no drop-out."""
    yield from _world(services, dropout=False)


def _world(services: EmbeddedServices, dropout: bool):  # type: ignore[no-untyped-def]
    client = connect(services.redis.url)
    prefix = f"s{uuid.uuid4().hex[:8]}"
    store = RedisFeatureStore(client, prefix=prefix)
    items = [it for it in _stream(7, n=9000) if not dropout
             or it.event.time_ms < T0 + (20 + int(it.event.user_id[1:]) * 37 % 180) * DAY_MS]
    marks = {p: max(it.event.time_ms for it in items if it.partition == p) for p in range(3)}
    run(store.apply(items, [Commit(p, max(it.offset for it in items if it.partition == p),
                                   marks[p], {}) for p in range(3)]))
    first = min(it.event.time_ms for it in items)
    for p in range(3):
        run(store.set_clock(f"f:{p}", first - first % DAY_MS))
    ref = Reference()
    for it in items:
        e = it.event
        ref.add(RefEvent(e.event_id, e.user_id, e.event_type, e.time_ms, e.price, e.brand))
    keys = Keys(prefix)  # the partitions' user indexes, as the worker's scoring keeps them
    for u, st in ref.users.items():  # (a third of the users as churned)
        p = int(u[1:]) % 3
        index = keys.gone(p) if int(u[1:]) % 9 < 3 else keys.active(p)
        run(client.zadd(index, {u: st.newest}))
    day = max(marks.values()) // DAY_MS + 2  # after every event
    yield client, prefix, ref, day
    run(client.aclose())


def _reference_rows(ref: Reference, day: int) -> dict[str, tuple[int, int, int, int]]:
    out = {}
    for u in ref.users:
        s = ref.value_summary(u, day * DAY_MS)
        if s is not None:
            out[u] = s[:4]
    return out


def test_rows_of_a_fit_day_equal_the_reference_and_the_fit_is_exact(world) -> None:  # type: ignore[no-untyped-def]
    client, prefix, ref, day = world
    rows, vs = ValueRows(client, prefix), ValueStore(client, prefix)
    settings = Settings(value_min_customers=10, value_fit_partial_seconds=3600)
    want = _reference_rows(ref, day)
    assert run(rows.put(0, day, 0, drop_before=0)) == sum(int(u[1:]) % 3 == 0 for u in want)
    assert run(rows.missing(day)) == {1, 2}
    assert run(fit_due(vs, rows, settings)) == 0  # waits for partitions 1 and 2
    for p in (1, 2):
        run(rows.put(p, day, 0, drop_before=0))
    assert run(rows.missing(day)) == set()
    ids, recs, prospects = run(rows.read(day))
    assert sorted(ids) == sorted(want) and prospects == len(ref.users) - len(want)
    for uid, rec in zip(ids, recs, strict=True):
        assert (rec["x"], rec["t_x"], rec["T"], rec["n"]) == want[uid], uid
    outcomes: list[str] = []
    assert run(fit_due(vs, rows, settings, lambda o, f, s: outcomes.append(o))) == 1
    assert outcomes == ["fitted"]
    fit = run(vs.current())
    assert fit is not None and fit.as_of_ms == day * DAY_MS
    assert run(rows.fit_days()) == {day: fit.params.version}
    served = run(rows.served_fits())  # kept apart from the versions, for old scores
    assert served == {day: fit.params.bgnbd}
    assert run(client.exists(rows.rows_key(day))) == 0 and run(rows.due()) == []
    # the same BG/NBD as a fit on the reference's summaries, row by row
    x, t_x, T = (np.array(c, dtype=float) for c in zip(*[w[:3] for w in want.values()],
                                                          strict=True))
    direct = bgnbd.fit(x, t_x, T)
    assert np.allclose(fit.params.bgnbd, direct, rtol=2e-3), (fit.params.bgnbd, direct)
    same, _ = fit_summaries(recs, day * DAY_MS, settings)
    assert np.allclose(fit.params.bgnbd, same.params.bgnbd, rtol=1e-12)
    index = run(client.zcard(vs.index_key))
    assert index == len(want)


def test_a_fit_without_drop_out_serves_as_the_nbd_model(steady_world) -> None:  # type: ignore[no-untyped-def]
    """Outcome ``unidentified``, but served: P(alive) exactly 1 for every user, while
    P(no purchase in H) and E[purchases in H] are the NBD closed forms on the
    reference's summaries (they still rank customers)."""
    client, prefix, ref, day = steady_world
    rows, vs = ValueRows(client, prefix), ValueStore(client, prefix)
    for p in range(3):
        run(rows.put(p, day, 0, drop_before=0))
    outcomes: list[str] = []
    settings = Settings(value_min_customers=10, value_fit_partial_seconds=3600)
    assert run(fit_due(vs, rows, settings, lambda o, f, s: outcomes.append(o))) == 1
    fit = run(vs.current())
    assert outcomes == ["unidentified"] and not bgnbd.identified(fit.params.bgnbd)
    assert run(rows.fit_days()) == {day: fit.params.version} and fit.params.version > 0
    model = ValueModel(vs, 30, every_days=1, lag_days=0)
    run(model.restore())
    assert model.serving(day) == fit.params.bgnbd
    r, alpha = fit.params.bgnbd.r, fit.params.bgnbd.alpha
    want = _reference_rows(ref, day)
    aggs = run(RedisFeatureStore(client, prefix=prefix).aggregates_at(sorted(want), day * DAY_MS))
    got = model.inputs(aggs)
    assert (got[:, 1] == 1.0).all()
    # the fit's a is tiny, not 0: the BG/NBD forms are the NBD ones to within 1e-4
    for (x, _, T, _), row in zip((want[u] for u in sorted(want)), got, strict=True):
        assert np.isclose(row[3], ((alpha + T) / (alpha + T + 30)) ** (r + x), rtol=1e-4)
        assert np.isclose(row[2], (r + x) * 30 / (alpha + T), rtol=1e-4)
    assert len({round(v, 9) for v in got[:, 3]}) > 10  # it ranks


def test_a_partition_that_never_delivers_makes_a_partial_fit(world) -> None:  # type: ignore[no-untyped-def]
    client, prefix, ref, day = world
    rows, vs = ValueRows(client, prefix), ValueStore(client, prefix)
    for p in (0, 2):
        run(rows.put(p, day, 0, drop_before=0))
    outcomes: list[str] = []
    settings = Settings(value_min_customers=10, value_fit_partial_seconds=0.2)
    assert run(fit_due(vs, rows, settings, lambda o, f, s: outcomes.append(o))) == 0
    time.sleep(0.3)
    assert run(fit_due(vs, rows, settings, lambda o, f, s: outcomes.append(o))) == 1
    assert outcomes == ["partial"]
    fit = run(vs.current())
    assert fit.params.customers == sum(int(u[1:]) % 3 != 1 for u in _reference_rows(ref, day))
    # too few customers: the day is recorded as skipped (0), nobody waits for it
    run(rows.put(0, day + 7, 0, drop_before=0))
    big = Settings(value_min_customers=10_000, value_fit_partial_seconds=0.0001)
    assert run(fit_due(vs, rows, big, lambda o, f, s: outcomes.append(o))) == 1
    assert outcomes[-1] == "skipped" and run(rows.fit_days())[day + 7] == 0


def test_old_rows_are_dropped_when_no_learner_takes_them(world) -> None:  # type: ignore[no-untyped-def]
    client, prefix, _, day = world
    rows = ValueRows(client, prefix)
    for d in (day, day + 7, day + 14, day + 21):
        run(rows.put(0, d, 0, drop_before=d - 14))
    assert [d for d, _ in run(rows.due())] == [day + 7, day + 14, day + 21]
    assert run(client.exists(rows.rows_key(day))) == 0


def test_the_worker_waits_for_a_fit_only_while_it_can_come(world) -> None:  # type: ignore[no-untyped-def]
    client, prefix, _, day = world
    day -= day % 7  # a fit day
    vs, rows = ValueStore(client, prefix), ValueRows(client, prefix)
    settings = Settings(value_min_customers=10)
    late: list[int] = []
    model = ValueModel(vs, 30, every_days=7, lag_days=7, wait_seconds=5,
                       on_late=lambda: late.append(1))
    for p in range(3):
        run(model.at_anchor(p, day * DAY_MS))  # each partition delivers its rows
    assert run(rows.missing(day)) == set() and model.serving(day + 7) is None
    # no learner alive: the anchor of the serving day does not wait, and counts the miss
    t0 = time.monotonic()
    run(model.at_anchor(0, (day + 7) * DAY_MS))
    assert time.monotonic() - t0 < 1 and late == [1] and model.serving(day + 7) is None

    async def learner() -> None:  # alive, fits 0.5 s later
        await rows.beat()
        await asyncio.sleep(0.5)
        await fit_due(vs, rows, settings)

    async def both() -> float:
        job = asyncio.create_task(learner())
        await asyncio.sleep(0.05)
        t = time.monotonic()
        await model.at_anchor(1, (day + 7) * DAY_MS)
        await job
        return time.monotonic() - t

    waited = run(both())
    assert 0.3 < waited < 4 and late == [1]
    fit = run(vs.current())
    assert model.known == {day: fit.params.bgnbd}
    # each score uses the fit serving on its own reference day, whatever the worker did
    # since: before day + 7 none, from day + 7 on the fit of day
    assert model.serving(day + 6) is None and model.serving(day + 13) == fit.params.bgnbd
    from core.value import bgnbd_inputs, summary_arrays
    store = RedisFeatureStore(client, prefix=prefix)
    some = [k.decode().split("{u:")[1][:-1] for k in run(client.keys(f"{prefix}:{{u:*"))][:6]
    aggs = []
    for i, u in enumerate(some):
        at = (day + (6 if i % 2 == 0 else 8)) * DAY_MS
        aggs.extend(a for a in run(store.aggregates_at([u], at)) if a is not None)
    got = model.inputs(aggs)
    for i, a in enumerate(aggs):
        m = None if a.now_ms // DAY_MS < day + 7 else fit.params.bgnbd
        assert np.allclose(got[i], bgnbd_inputs(m, 30, *summary_arrays([a]))[0])
    # a restarted worker knows the same fits
    again = ValueModel(vs, 30, every_days=7, lag_days=7)
    run(again.restore())
    assert again.known == model.known


def test_a_day_left_behind_does_not_hold_the_later_ones(world) -> None:  # type: ignore[no-untyped-def]
    """A partition far behind: a later fit day is complete while an earlier one waits
    for it. The earlier day is given up (it could no longer serve before the later one),
    the later one is fitted, and the laggard's late rows for the given-up day are not
    written (an incomplete set nobody would complete)."""
    client, prefix, _, day = world
    rows, vs = ValueRows(client, prefix), ValueStore(client, prefix)
    settings = Settings(value_min_customers=10, value_fit_partial_seconds=3600)
    run(rows.put(0, day, 0, drop_before=day - 14))
    for p in range(3):
        run(rows.put(p, day + 7, 0, drop_before=day - 7))
    outcomes: list[str] = []
    assert run(fit_due(vs, rows, settings, lambda o, f, s: outcomes.append(o))) == 2
    assert outcomes == ["superseded", "fitted"]
    days = run(rows.fit_days())
    assert days[day] == 0 and days[day + 7] == run(vs.current()).params.version
    assert run(rows.put(1, day, 0, drop_before=day - 14)) == 0  # the laggard arrives
    assert run(client.exists(rows.rows_key(day))) == 0 and run(rows.due()) == []
    # and a day far older than the newest due one is not written either
    run(rows.put(0, day + 28, 0, drop_before=day + 14))
    assert run(rows.put(2, day + 7 + 1, 0, drop_before=day - 6)) == 0


def test_a_fit_waits_for_other_workers_partitions_not_its_own(world) -> None:  # type: ignore[no-untyped-def]
    """Several workers: a partition of this worker at the serving day waits while the
    missing rows are other workers' partitions (they come), but never for its own
    (they are behind in its own batch) and not through a rebalance (which waits for
    the batch under way)."""
    client, prefix, _, day = world
    day -= day % 7  # a fit day
    vs, rows = ValueStore(client, prefix), ValueRows(client, prefix)
    settings = Settings(value_min_customers=10)
    late: list[int] = []

    def model(owned: set[int]) -> ValueModel:
        m = ValueModel(vs, 30, every_days=7, lag_days=7, wait_seconds=5,
                       on_late=lambda: late.append(1))
        m.owned = owned
        return m

    ours, theirs = model({0}), model({1, 2})
    run(rows.beat())  # a learner is alive
    run(ours.at_anchor(0, day * DAY_MS))  # only partition 0 delivered: 1, 2 are behind
    # partition 1 is this worker's own: no wait, the miss is counted
    t0 = time.monotonic()
    run(model({0, 1}).at_anchor(0, (day + 7) * DAY_MS))
    assert time.monotonic() - t0 < 1 and late == [1]

    async def rebalance() -> float:  # 1 and 2 belong to another worker; a rebalance
        t = time.monotonic()          # starts 0.4 s into the wait
        waiting = asyncio.create_task(ours.at_anchor(0, (day + 7) * DAY_MS))
        await asyncio.sleep(0.4)
        ours.rebalancing = True
        await waiting
        return time.monotonic() - t

    assert 0.35 < run(rebalance()) < 1.5 and late == [1, 1]
    ours.rebalancing = False
    ours = model({0})  # (one warning per day: a fresh worker view)

    async def others_catch_up() -> float:
        t = time.monotonic()
        waiting = asyncio.create_task(ours.at_anchor(0, (day + 7) * DAY_MS))
        await asyncio.sleep(0.4)
        assert not waiting.done()
        for p in (1, 2):  # the other worker's partitions reach the day
            await theirs.at_anchor(p, day * DAY_MS)
        await rows.beat()
        await fit_due(vs, rows, settings)  # the learner fits
        await waiting
        return time.monotonic() - t

    assert 0.35 < run(others_catch_up()) < 4 and late == [1, 1]
    assert ours.serving(day + 7) == run(vs.current()).params.bgnbd is not None
