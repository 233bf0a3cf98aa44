"""The online model's optional BG/NBD inputs (CHURN_MODEL_VALUE_INPUTS): the summaries
behind them against the independent reference, the vector formulas against the scalar
ones, the anchors' snapshots, the learner, and the scorers against River."""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from core.apply import MemoryUser, apply_event
from core.bgnbd import BGNBD
from core.events import Event
from core.features import FEATURE_NAMES, window_aggregates
from core.model import REASON_NAMES, VALUE_INPUT_NAMES, make_pipeline, model_inputs, reasons
from core.scoring import VALUE_INPUTS, LinearScorer, make_scorer
from core.settings import Settings
from core.tiers import AlertGate, TierPolicy
from core.value import _bgnbd_part, bgnbd_inputs, summary_arrays
from offline.value_fits import summaries
from state.memory_store import MemoryFeatureStore
from state.value_model import ValueModel
from stream.anchors import Anchors, Release
from stream.learner.state import new_state
from stream.worker.live import Live
from stream.worker.processor import BatchProcessor, DeadLetter, Record
from tests.reference import DAY, Reference, RefEvent, close
from tests.unit.test_features import user_log

M = BGNBD(r=0.6, alpha=4.0, a=0.7, b=2.5)


def _apply(evs: list[Event]) -> tuple[dict[str, MemoryUser], Reference]:
    users: dict[str, MemoryUser] = {}
    ref = Reference()
    for off, ev in enumerate(evs):
        apply_event(users, ev, 0, off)
        ref.add(RefEvent(ev.event_id, ev.user_id, ev.event_type, ev.time_ms, ev.price,
                         ev.brand))
    return users, ref


def _want(ref: Reference, now: int, horizon: int = 30) -> list[float]:
    """The BG/NBD inputs from the reference's summary and the scalar formulas."""
    s = ref.value_summary("u", now)
    if s is None:  # never bought: x = t_x = 0 and T = days since the first event
        return [0.0, *_scalar(0, 0, now // DAY - ref.users["u"].first // DAY, horizon)]
    return [1.0, *_scalar(s[0], s[1], s[2], horizon)]


def _scalar(x: int, t_x: int, T: int, horizon: int) -> tuple[float, float, float]:
    alive, expected, none, _ = _bgnbd_part(M, float(x), float(t_x), float(T), float(horizon),
                                           30, 0.0)
    return alive, expected, none


@settings(max_examples=200, deadline=None)
@given(user_log(), st.integers(0, 400 * DAY))
def test_inputs_equal_reference_summary_and_scalar_formulas(evs: list[Event], later: int
                                                            ) -> None:
    users, ref = _apply(evs)
    state = users["u"].state
    for now in (state.last_ms, state.last_ms + later):
        aggs = [window_aggregates(state, now)]
        got = bgnbd_inputs(M, 30, *summary_arrays(aggs))[0].tolist()
        want = _want(ref, now)
        assert got[0] == want[0]
        assert all(close(g, w, 1e-9) for g, w in zip(got[1:], want[1:], strict=True)), (got, want)
        # the evaluator computes the same summaries from the state directly
        assert [a.tolist() for a in summaries([users["u"]], now)] == \
            [a.tolist() for a in summary_arrays(aggs)]
        # neutral before the first fit
        assert bgnbd_inputs(None, 30, *summary_arrays(aggs))[0].tolist() == \
            [got[0], 1.0, 0.0, 0.0]


def _examples(n: int, seed: int, value: bool) -> list[tuple[dict[str, float], bool]]:
    """Churn depends on silence, and (with ``value``) on P(alive)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        f = {name: rng.random() * rng.choice([1, 5, 30, 300]) for name in FEATURE_NAMES}
        for name in ("purchase_ratio", "activity_ratio_15d", "brand_concentration_ratio",
                     "cart_abandon_ratio"):
            f[name] = rng.random()
        f["activity_trend"] = rng.uniform(-1, 1)
        if value:
            f.update(bg_customer=float(rng.random() < 0.6), bg_p_alive=rng.random(),
                     bg_expected_purchases=rng.expovariate(1.0), bg_p_no_purchase=rng.random())
        y = f["days_since_last_event"] > 10 or (value and f["bg_p_alive"] < 0.2)
        out.append((f, y))
    return out


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000))
def test_linear_scorer_with_value_inputs_equals_river(seed: int) -> None:
    m = make_pipeline("logreg", lr=0.05)
    for f, y in _examples(400, 1, True):
        m.learn_one(model_inputs(f), y)
    assert set(VALUE_INPUTS) == set(m.steps["StandardScaler"].means)
    scorer = make_scorer(m, "logreg", 7, 400, 100, 30, value_inputs=True)
    assert isinstance(scorer, LinearScorer) and scorer.value_inputs
    feats = [f for f, _ in _examples(20, seed, True)]
    risks, why = scorer.score(feats)
    for f, risk, rs in zip(feats, risks, why, strict=True):
        assert abs(risk - m.predict_proba_one(model_inputs(f))[True]) < 1e-12
        want = reasons(m, f, {}, k=3)
        assert [REASON_NAMES[i] for i, _ in rs] == [r.feature for r in want]
        assert all(abs(c - r.contribution) < 1e-9 for (_, c), r in zip(rs, want, strict=True))
    # the model leans on P(alive): it is among the reasons of users unlikely to be alive
    low = [f for f in feats if f["bg_p_alive"] < 0.1]
    if low:
        _, low_why = scorer.score(low)
        assert any(REASON_NAMES[i] == "bg_p_alive" for rs in low_why for i, _ in rs)


def test_learner_uses_the_value_inputs_only_when_configured() -> None:
    msg = {"partition": 0, "t": 5, "i": 0, "label": 1,
           "features": {n: 1.0 for n in FEATURE_NAMES},
           "value": {"bg_customer": 1.0, "bg_p_alive": 0.25, "bg_expected_purchases": 0.5}}
    on = new_state(Settings(model_value_inputs=True))
    off = new_state(Settings())
    for state in (on, off):
        state.learn(json.dumps(msg).encode(), 0)
        # a message from a worker without the inputs: neutral ones (customer: bought < 365 d)
        state.learn(json.dumps({**msg, "i": 1, "value": None}).encode(), 1)
    for state in (on, off):  # the linear pair learns on arrays: into River's objects
        assert state.champion is not None
        state.champion.sync()
    means_on = on.pipeline.steps["StandardScaler"].means
    assert means_on["bg_p_alive"] == (0.25 + 1.0) / 2
    assert means_on["bg_customer"] == 1.0  # days_since_last_purchase 1.0 < 365
    assert means_on["bg_log_expected_purchases"] == math.log1p(0.5) / 2
    # without them the model's regression never sees them (its scaler is shared with the
    # stacked candidate, which does: core.champion)
    assert not any(n.startswith("bg_") for n in off.pipeline.steps["LogisticRegression"].weights)
    assert any(n.startswith("bg_") for n in on.pipeline.steps["LogisticRegression"].weights)
    assert on.summary()["value_inputs"] == 1.0 and off.summary()["value_inputs"] == 0.0


async def _no_alerts(msgs: object) -> None:
    pass


async def _no_dlq(dead: list[DeadLetter]) -> None:
    raise AssertionError(dead)


def test_anchor_snapshots_carry_the_inputs_of_the_fit_current_at_the_anchor() -> None:
    """Two users (one customer, one not) snapshotted at an anchor and released H later:
    the message's inputs are those of the reference summary at the anchor."""
    store = MemoryFeatureStore()
    sent: list[bytes] = []

    async def sink(msgs: Sequence[Release]) -> None:
        sent.extend(r.message() for r in msgs)  # what the worker sends

    live = Live(store, _no_alerts, TierPolicy(), AlertGate(), 3)
    live.value = ValueModel(None, 3, params=M)
    anchors = Anchors(store, sink, horizon_days=3, sample_rate=1.0, value=live.value)
    proc = BatchProcessor(store, _no_dlq, churn_horizon_days=3, live=live, anchors=anchors)
    t0 = 20_000 * DAY
    log = [("c", "purchase", 0), ("p", "view", 1), ("c", "purchase", 2), ("p", "view", 3),
           ("c", "view", 4), ("z", "view", 8)]
    means_at_5: dict[str, float] = {}

    async def run() -> None:
        for i, (u, kind, d) in enumerate(log):
            body = {"event_id": f"e{i}", "user_id": u, "event_type": kind,
                    "event_time": t0 + d * DAY + 3_600_000}
            if kind == "purchase":
                body["price"] = 10.0
            if d == 8:  # the anchors of days 5..8 run before this event
                means_at_5.update((await store.population())[1])
            await proc.process([Record(0, i, u.encode(), json.dumps(body).encode())])

    asyncio.run(run())
    got = {m["user_id"]: m for m in map(json.loads, sent) if m["t"] == t0 + 5 * DAY}
    assert set(got) == {"c", "p"}
    at = t0 + 5 * DAY
    # c: purchase days 0 and 2 -> x = 1, t_x = 2, T = 5; p: never bought, T = 5 - 1 = 4
    for uid, (cust, x, t_x, T) in {"c": (1.0, 1, 2, 5), "p": (0.0, 0, 0, 4)}.items():
        alive, expected, none, _ = _bgnbd_part(M, x, t_x, T, 3.0, 30, 0.0)
        want = dict(zip(VALUE_INPUT_NAMES, (cust, alive, expected, none), strict=True))
        assert got[uid]["t"] == at
        assert all(close(got[uid]["value"][n], want[n], 1e-12) for n in VALUE_INPUT_NAMES)
    # the population means of the latest snapshots (day 4: c and p) include the inputs
    assert means_at_5["bg_customer"] == 0.5 and 0 < means_at_5["bg_p_alive"] <= 1


def test_the_setting_wins_over_a_checkpoint_on_resume() -> None:
    from state.models import Checkpoint
    from stream.learner.app import Learner

    saved = new_state(Settings())  # learned without the value inputs

    class Store:
        async def load(self) -> Checkpoint:
            return Checkpoint(3, 10, 0, saved, {})

    learner = Learner(Settings(model_value_inputs=True), Store())  # type: ignore[arg-type]
    asyncio.run(learner.resume())
    assert learner.version == 3 and learner.state.value_inputs
    assert learner.state.summary()["value_inputs"] == 1.0


def test_a_bad_value_object_is_counted_invalid_and_learns_nothing() -> None:
    state = new_state(Settings(model_value_inputs=True))
    base = {"partition": 0, "t": 5, "label": 0, "features": {n: 1.0 for n in FEATURE_NAMES}}
    bad = [{"bg_customer": 1.0}, "abc", [1, 2], {"bg_customer": 1.0, "bg_p_alive": "x",
                                                 "bg_expected_purchases": 0.0},
           {"bg_customer": 1.0, "bg_p_alive": float("nan"), "bg_expected_purchases": 0.0}]
    for i, value in enumerate(bad):
        raw = json.dumps({**base, "i": i, "value": value}).encode()
        assert state.learn(raw, i) is None
    assert (state.invalid, state.examples) == (len(bad), 0)
    good = json.dumps({**base, "i": 9, "value": dict.fromkeys(VALUE_INPUT_NAMES, 0.5)})
    assert state.learn(good.encode(), 9) is not None and state.examples == 1


def test_the_evaluators_value_fits_follow_the_live_schedule() -> None:
    """Fits only at fit days (day % every == 0) with enough customers, each on the
    summaries of that anchor, warm-started from the previous fit, each served (one
    without drop-out as the NBD model); each serves from ``lag`` days later
    (core.value_schedule), a skipped day leaves the older one."""
    from core import bgnbd
    from offline.value_fits import ValueTrack

    rng = random.Random(5)
    day0 = 20_000 - 20_000 % 7  # a fit day
    evs = []  # customers join over 30 days, buy every few days, drop out after a purchase
    for k in range(300):
        t = (day0 - 40 + k % 30) * DAY + rng.randrange(DAY)
        while t < (day0 + 30) * DAY:
            evs.append(Event(event_id=f"e{len(evs)}", user_id=f"u{k}", event_type="purchase",
                             event_time=t, price=5.0))
            if rng.random() < 0.3:
                break
            t += int(rng.expovariate(1 / 3) * DAY) + DAY
    evs.sort(key=lambda e: e.time_ms)
    users: dict[str, MemoryUser] = {}
    track = ValueTrack(30, every_days=7, lag_days=7, min_customers=150)
    served: dict[int, BGNBD | None] = {}
    made: dict[int, BGNBD] = {}
    last: BGNBD | None = None
    i = 0
    for day in range(day0 - 40, day0 + 30):
        anchor = (day + 1) * DAY  # the anchor at the end of the day
        while i < len(evs) and evs[i].time_ms < anchor:
            apply_event(users, evs[i], 0, i)
            i += 1
        if (day + 1) % 7 == 0:
            cust, x, t_x, T = summaries(list(users.values()), anchor)
            keep = cust > 0
            if keep.sum() >= 150:
                last = bgnbd.fit(x[keep], t_x[keep], T[keep], start=last or bgnbd.START)
                made[day + 1] = last
        track.maybe_fit(users, anchor)
        served[day + 1] = track.params
    assert sorted(made) == sorted(track.made) and len(made) >= 4, sorted(made)
    assert all(d % 7 == 0 for d in made) and track.fits == len(made)
    assert min(made) > day0 - 35  # the first fit days had too few customers
    for d, m in made.items():  # compressed rows + weights: the same likelihood
        assert all(close(a, b, 2e-3) for a, b in zip(track.made[d], m, strict=True))
    for d, p in served.items():
        fit_day = (d - 7) // 7 * 7
        want = max((k for k in track.made if k <= fit_day), default=None)
        assert p == (track.made[want] if want is not None else None), d
    first = min(made)
    assert served[first + 6] is None and served[first + 7] == track.made[first]
