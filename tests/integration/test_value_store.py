"""Customer value on a real Redis: the scan script's summaries against the independent
reference, and a fit stored as a version with its value index."""

from __future__ import annotations

import asyncio
import random
import uuid

import numpy as np
import pytest

from core import segments
from core.events import Event
from core.settings import Settings
from services.embedded import EmbeddedServices
from state.redis_store import RedisFeatureStore, connect
from state.store import Commit, Item
from state.value_store import ValueStore
from stream.jobs.value_fit import fit_summaries, run_fit
from tests.reference import DAY, Reference, RefEvent

T0 = 1_600_000_000_000
_LOOP = asyncio.new_event_loop()


def run(coro):  # type: ignore[no-untyped-def]
    return _LOOP.run_until_complete(coro)


def _stream(seed: int, users: int = 150, n: int = 6000) -> list[Item]:
    """Users buying on some days over ~200 days, with late (also beyond the horizon),
    duplicate and unpriced purchases, over 3 partitions."""
    rng = random.Random(seed)
    items: list[Item] = []
    ids: list[Event] = []
    for i in range(n):
        if ids and rng.random() < 0.04:  # a duplicate delivered again at a new offset
            e = rng.choice(ids)
        else:
            t = T0 + i * 200 * DAY // n - (rng.randrange(70 * DAY) if rng.random() < 0.08 else 0)
            uid = f"u{rng.randrange(users)}"
            kind = "purchase" if rng.random() < 0.25 else rng.choice(["view", "cart"])
            e = Event(event_id=f"e{i}", user_id=uid, event_type=kind, event_time=t,
                      price=rng.choice([None, 5.0, rng.random() * 90]))
            ids.append(e)
        items.append(Item(e, int(e.user_id[1:]) % 3, i))
    return items


@pytest.fixture(scope="module")
def loaded(services: EmbeddedServices):  # type: ignore[no-untyped-def]
    client = connect(services.redis.url)
    prefix = f"v{uuid.uuid4().hex[:8]}"
    store = RedisFeatureStore(client, prefix=prefix)
    items = _stream(3)
    ref = Reference()
    marks: dict[int, int] = {}
    for k in range(0, len(items), 500):
        chunk = items[k:k + 500]
        commits = []
        for p in range(3):
            mine = [it for it in chunk if it.partition == p]
            if mine:
                marks[p] = max(marks.get(p, 0), *(it.event.time_ms for it in mine))
                commits.append(Commit(p, mine[-1].offset, marks[p], {}))
        run(store.apply(chunk, commits))
    for it in items:
        e = it.event
        ref.add(RefEvent(e.event_id, e.user_id, e.event_type, e.time_ms, e.price, e.brand))
    return client, prefix, ref, marks


@pytest.mark.parametrize("window", [0, 20, 90])
def test_scan_summaries_equal_reference(loaded, window: int) -> None:  # type: ignore[no-untyped-def]
    client, prefix, ref, marks = loaded
    got = run(ValueStore(client, prefix).summaries(window, count=37))
    assert got.as_of_ms == max(marks.values())
    buyers = {u for u, s in ref.users.items() if s.purchase_days}
    assert sorted(got.ids) == sorted(buyers)
    assert got.prospects == len(ref.users) - len(buyers)
    for uid, rec in zip(got.ids, got.records, strict=True):
        now = marks[int(uid[1:]) % 3]
        x, t_x, T, n, spend = ref.value_summary(uid, now)
        days = ref.users[uid].purchase_days
        today = now // DAY
        freq = len(days) if window == 0 else sum(today - window < d <= today for d in days)
        assert (rec["x"], rec["t_x"], rec["T"], rec["n"]) == (x, t_x, T, n)
        assert rec["spend"] == pytest.approx(spend, rel=1e-12, abs=1e-9)
        assert (rec["recency"], rec["frequency"]) == (today - max(days), freq)


def test_fit_is_versioned_and_indexes_every_customer(loaded) -> None:  # type: ignore[no-untyped-def]
    client, prefix, ref, _ = loaded
    vs = ValueStore(client, prefix, keep=2)
    settings = Settings(value_min_customers=10, rfm_frequency_days=60)
    first = run(run_fit(vs, settings))
    second = run(run_fit(vs, settings))
    assert (first.params.version, second.params.version) == (1, 2)
    assert run(vs.current()) == second
    # the index holds exactly the CLVs the fit computes from the same summaries
    s = run(vs.summaries(60))
    _, clv = fit_summaries(s.records, s.as_of_ms, settings, first)
    index = dict(run(client.zrange(vs.index_key, 0, -1, withscores=True)))
    assert len(index) == len(s.ids)
    for uid, c in zip(s.ids, clv, strict=True):
        assert index[uid.encode()] == pytest.approx(c, rel=1e-9)
    assert sum(second.segments.values()) == len(ref.users)
    assert set(second.segments) == set(segments.SEGMENTS)
    assert second.segments[segments.PROSPECT] == s.prospects
    assert np.all(clv >= 0)
    run(run_fit(vs, settings))  # a third version drops the first
    assert run(client.exists(f"{prefix}:value:fit:1")) == 0
    assert run(client.exists(f"{prefix}:value:fit:3")) == 1


def test_too_few_customers_keeps_the_old_fit(loaded) -> None:  # type: ignore[no-untyped-def]
    client, prefix, _, _ = loaded
    vs = ValueStore(client, f"{prefix}x")  # an empty namespace
    assert run(run_fit(vs, Settings(value_min_customers=10))) is None
    assert run(vs.current()) is None


def test_retired_customers_stay_in_the_bgnbd_fit(services: EmbeddedServices) -> None:
    """Half of the users churn and are deleted (retention): the archive gives the scan
    their summaries at the watermark, and the BG/NBD fit equals a fit on every customer's
    reference summary, living and retired."""
    from collections import Counter

    from core import bgnbd
    from core.tiers import ALL_TIERS, TierRecord
    from state.codec import Score
    from state.store import ScoreWrite, TierChange

    client = connect(services.redis.url)
    prefix = f"r{uuid.uuid4().hex[:8]}"
    store = RedisFeatureStore(client, prefix=prefix)
    items = _stream(5, users=80, n=3000)
    marks: dict[int, int] = {}
    for p in range(3):
        mine = [it for it in items if it.partition == p]
        marks[p] = max(it.event.time_ms for it in mine)
    run(store.apply(items, [Commit(p, max(it.offset for it in items if it.partition == p),
                                   marks[p], {}) for p in range(3)]))
    ref = Reference()
    for it in items:
        e = it.event
        ref.add(RefEvent(e.event_id, e.user_id, e.event_type, e.time_ms, e.price, e.brand))
    gone = sorted(u for u in ref.users if int(u[1:]) % 2 == 0)
    churned = ALL_TIERS.index("churned")
    for u in gone:
        p, last = int(u[1:]) % 3, ref.users[u].newest
        run(store.write_scores([ScoreWrite(u, p, Score(0.5, last, "rule"), last)]))
        run(store.write_tiers([TierChange(u, p, None, TierRecord(churned, last, 0, 0), last)],
                              {}))
    assert sum(run(store.retire(p, T0 + 10_000 * DAY)) for p in range(3)) == len(gone)

    vs = ValueStore(client, prefix)
    s = run(vs.summaries(0))
    as_of = max(marks.values())
    buyers = {u for u, st in ref.users.items() if st.purchase_days}
    assert sorted(s.ids) == sorted(buyers - set(gone))
    want = Counter(ref.value_summary(u, as_of)[:3] for u in buyers & set(gone))
    assert {tuple(r[:3]): r[3] for r in s.retired.tolist()} == want and sum(want.values()) > 10

    settings = Settings(value_min_customers=10)
    fit, _ = fit_summaries(s.records, s.as_of_ms, settings, None, s.retired)
    assert fit.params.retired == sum(want.values())
    assert fit.params.customers == len(s.ids)
    # the same likelihood, written out row by row from the reference
    every = [ref.value_summary(u, as_of if u in gone else marks[int(u[1:]) % 3])[:3]
             for u in sorted(buyers)]
    x, t_x, T = (np.array(c, dtype=float) for c in zip(*every, strict=True))
    direct = bgnbd.fit(x, t_x, T)
    assert np.allclose(fit.params.bgnbd, direct, rtol=2e-3), (fit.params.bgnbd, direct)
    # the dead count: without them the population looks more alive
    alone, _ = fit_summaries(s.records, s.as_of_ms, settings)
    m_all, m_alone = fit.params.bgnbd, alone.params.bgnbd
    probe = (np.array([2.0]), np.array([10.0]), np.array([150.0]))
    assert bgnbd.p_alive(m_all, *probe)[0] < bgnbd.p_alive(m_alone, *probe)[0]


@pytest.mark.parametrize("absolute", [False, True])
def test_value_at_risk_book_equals_brute_force(loaded, absolute: bool) -> None:  # type: ignore[no-untyped-def]
    """The fit's value at risk per persona and tier against a brute force: each customer's
    persona by the scalar rule, risk by ZSCORE, tier from ZREVRANK (or the thresholds),
    CLV from the index written by the same fit; ties in risk at the tier edges."""
    from core.tiers import TIERS, tier_bounds
    from state.keys import Keys

    client, prefix, ref, _ = loaded
    prefix = f"{prefix}b{int(absolute)}"
    run(client.eval("for _, k in ipairs(redis.call('KEYS', ARGV[1])) do "
                    "redis.call('COPY', k, ARGV[2] .. string.sub(k, #ARGV[3] + 1)) end",
                    0, f"{loaded[1]}:*", prefix, loaded[1]))
    rank = Keys(prefix).rank
    rng = random.Random(5)
    users = sorted(ref.users)
    run(client.zadd(rank, {u: rng.choice([0.25, 0.5, 0.75, rng.random()]) for u in users
                           if rng.random() < 0.85}))
    settings = Settings(value_min_customers=10, rfm_frequency_days=60,
                        tier_mode="absolute" if absolute else "percentile",
                        tier_abs_cuts=(0.8, 0.5, 0.3))
    vs = ValueStore(client, prefix)
    fit = run(run_fit(vs, settings))
    assert fit is not None and fit.book is not None
    s = run(vs.summaries(60))
    n = run(client.zcard(rank))
    bounds = tier_bounds(n, (0.05, 0.15, 0.30))
    want_seg = {p: [0, 0, 0.0, 0.0, 0.0] for p in segments.PERSONAS}
    want_tier = {t: [0, 0.0, 0.0] for t in TIERS}
    for uid, rec in zip(s.ids, s.records, strict=True):
        mean = rec["spend"] / rec["n"] if rec["n"] else 0.0
        name = segments.persona(*segments.scores(fit.cuts, rec["recency"], rec["frequency"],
                                                 mean)[:2])
        clv = run(client.zscore(vs.index_key, uid))
        risk = run(client.zscore(rank, uid))
        row = want_seg[name]
        row[0] += 1
        row[4] += clv
        if risk is None:
            continue
        row[1] += 1
        row[2] += risk
        row[3] += risk * clv
        if absolute:
            cuts = zip(TIERS, (0.8, 0.5, 0.3), strict=False)
            tier = next((t for t, c in cuts if risk >= c), "low")
        else:
            r = run(client.zrevrank(rank, uid))
            tier = next(t for t, (a, b) in bounds.items() if a <= r < b)
        want_tier[tier][0] += 1
        want_tier[tier][1] += risk * clv
        want_tier[tier][2] += clv
    got = fit.book
    for p, (c, k, rs, var, clv_sum) in want_seg.items():
        g = got["segments"][p]
        assert (g["customers"], g["scored"]) == (c, k), p
        assert g["mean_risk"] == (pytest.approx(rs / k, abs=1e-6) if k else None)
        assert g["value_at_risk"] == pytest.approx(var, abs=0.01)
        assert g["clv"] == pytest.approx(clv_sum, abs=0.01)
    for t, (c, var, clv_sum) in want_tier.items():
        g = got["tiers"][t]
        assert g["customers"] == c and g["value_at_risk"] == pytest.approx(var, abs=0.01)
        assert g["clv"] == pytest.approx(clv_sum, abs=0.01)
    assert sum(v["customers"] for v in got["tiers"].values()) == sum(
        v[1] for v in want_seg.values()) > 50
    assert run(vs.current()).book == got  # stored with the fit
