"""Online model selection (core.champion): every candidate's prequential metrics against a
brute-force recomputation, the margin, the calibration, what workers serve, and that no
candidate learns from an example before it is released."""

from __future__ import annotations

import math
import pickle
import random

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.batch import BatchCandidate
from core.candidates import FixedCandidate, OnlineCandidate, calibrate, platt
from core.champion import ALL_INPUTS, Champion, fold_of
from core.model import model_inputs
from core.rules import RULE_NAME

DAY = 86_400_000


def stream(n: int, seed: int = 1) -> list[tuple[dict[str, float], bool, int]]:
    """Examples where silence and the BG/NBD P(no purchase) both carry the label."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        f = {name: rng.random() for name in ALL_INPUTS}
        days = rng.expovariate(1 / 8)
        none = rng.random()
        f.update(days_since_last_event=days, active_days_30d=float(rng.randint(1, 12)),
                 bg_p_no_purchase=none, bg_customer=1.0, purchase_days_total=float(
                     rng.randint(1, 9)))
        p = 1 / (1 + math.exp(-(0.25 * days + 3 * none - 3)))
        out.append((f, rng.random() < p, i // 200 * DAY))
    return out


def test_candidate_metrics_equal_a_brute_force_recomputation() -> None:
    data = stream(3000)
    ch = Champion(horizon_days=30, window=1000, every=500, min_labels=300, batch_every_days=2)
    for i, (f, y, rel) in enumerate(data):
        ch.learn(f, y, rel, user=f"u{i % 700}")
    got = ch.metrics()
    # the same candidates, built apart, each predicting before it learns
    twins: dict[str, object] = {
        "model:logreg": OnlineCandidate("model:logreg", "logreg", {}, False),
        "stacked:logreg": OnlineCandidate("stacked:logreg", "logreg", {"lr": 0.005}, True),
        "bgnbd": FixedCandidate("bgnbd"), "recency": FixedCandidate("recency"),
        RULE_NAME: FixedCandidate("rule")}
    preds: dict[str, list[float]] = {n: [] for n in twins}
    for f, y, _ in data:
        for name, c in twins.items():
            assert isinstance(c, OnlineCandidate | FixedCandidate)
            preds[name].append(c.predict(f))
            c.learn(f, y)
    batch = BatchCandidate(ALL_INPUTS, every_days=2, min_examples=300)
    for i, (f, y, rel) in enumerate(data):
        batch.queue(f, y, rel, fold_of(f"u{i % 700}"))
    preds["batch:hgb"] = [0.5 if math.isnan(s) else s for s, _ in batch.flush()]
    # the blend: weights refit at each decision (every 500 examples) on the window of the
    # others' scores, used for the examples after it
    from core import blend

    labels = np.array([int(y) for _, y, _ in data])
    e = np.log1p(np.array([f["bg_expected_purchases"] for f, _, _ in data]))
    kinds = [("model:logreg", "logit"), ("stacked:logreg", "logit"), ("bgnbd", "logit"),
             ("recency", "log1p"), ("batch:hgb", "logit")]
    g = np.column_stack([*(blend.transform(np.array(preds[n]), k) for n, k in kinds), e])
    w = None
    mixed = []
    for k in range(len(data)):
        mixed.append(float(blend.score(g[k:k + 1], w)[0]))
        if (k + 1) % 500 == 0:
            lo = max(0, k + 1 - 1000)
            w = blend.fit(g[lo:k + 1], labels[lo:k + 1].astype(float))
    preds["blend"] = mixed
    y = labels[-1000:]
    assert sorted(got) == sorted(preds)
    for name, p in preds.items():
        want = roc_auc_score(y, np.array(p[-1000:]))
        assert got[name]["rocauc"] == pytest.approx(want, abs=1e-12), name
    # the ranking candidates differ: the test can tell them apart
    assert len({round(m["rocauc"], 6) for m in got.values()}) == len(got)


def test_margin_and_switches() -> None:
    ch = Champion(window=400, every=10**9, min_labels=0, margin=0.05, batch=False)
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.4
    noise = rng.random(400)
    def fill(good: str, strength: float) -> None:
        for name in ch.scores:
            s = noise if name != good else noise * (1 - strength) + y * strength
            ch.scores[name].clear()
            ch.scores[name].extend(s.tolist())
        ch.labels.clear()
        ch.labels.extend(y.astype(int).tolist())
        ch.bg_e.clear()
        ch.bg_e.extend([0.0] * 400)
    fill("recency", 0.02)  # better than the rule, by less than the margin
    ch.decide(release_ms=5)
    assert ch.champion == RULE_NAME and not ch.switches
    fill("recency", 0.5)
    ch.decide(release_ms=7)
    assert ch.champion == "recency" and ch.since_ms == 7
    assert ch.switches[-1]["from"] == RULE_NAME and ch.switches[-1]["to"] == "recency"
    assert ch.switches[-1]["metric"] > ch.switches[-1]["was"] + 0.05


def test_platt_recovers_known_parameters() -> None:
    rng = np.random.default_rng(4)
    s = rng.uniform(0.02, 0.98, 50_000)
    true = 1 / (1 + np.exp(-(1.7 * np.log(s / (1 - s)) - 0.4)))
    y = (rng.random(50_000) < true).astype(float)
    ab = platt(s, y, "logit")
    assert ab is not None
    a, b = ab
    assert a == pytest.approx(1.7, abs=0.06) and b == pytest.approx(-0.4, abs=0.04)
    # strictly increasing: ranks are kept
    c = calibrate(np.sort(s), (a, b), "logit")
    assert np.all(np.diff(c) > 0)


@pytest.mark.parametrize("name", ["model:logreg", "stacked:logreg", "bgnbd", "recency",
                                  RULE_NAME, "batch:hgb", "blend"])
def test_served_scores_are_the_calibrated_candidate(name: str) -> None:
    data = stream(2500, seed=2)
    ch = Champion(window=1000, every=250, min_labels=200, batch_every_days=1)
    for i, (f, y, rel) in enumerate(data):
        ch.learn(f, y, rel, user=f"u{i % 500}")
    ch.champion = name  # as if it had won
    ch.decide(release_ms=data[-1][2])
    if ch.champion != name:  # a better candidate took over again: force it
        ch.champion = name
    ch.calibration = platt(np.fromiter(ch.scores[name], float), np.fromiter(ch.labels, float),
                           ch.transform(name))
    users = [f for f, _, _ in stream(50, seed=9)]
    served = pickle.loads(pickle.dumps(ch)).scorer(7)  # as a worker loads it
    risks, why = served.score(users)
    if name == "blend":  # the others' raw scores, transformed, weighted
        from core import blend

        cols = [blend.transform(np.array([ch.candidates[n].predict(f) for f in users]), k)
                for n, k in ch.blend_of]
        e = np.log1p([f["bg_expected_purchases"] for f in users])
        raw = blend.score(np.column_stack([*cols, e]), ch.blend_w).tolist()
    else:
        cand = ch.candidates[name]
        raw = [cand.predict(f) for f in users]
    want = calibrate(raw, ch.calibration, ch.transform(name))
    assert np.allclose(risks, want, rtol=1e-12, atol=1e-15)
    assert served.name == name and served.version == (0 if name == RULE_NAME else 7)
    # reasons: positive contributions, largest first, for most users
    assert sum(1 for r in why if r) >= 10
    assert all(all(c > 0 for _, c in r) and [c for _, c in r] == sorted(
        (c for _, c in r), reverse=True) for r in why)


def test_no_candidate_learns_before_the_release() -> None:
    """The batch challenger retrains only on examples released before the trigger; every
    candidate's window holds predictions made before it learned the label."""
    data = stream(2000, seed=3)
    ch = Champion(window=2000, every=100, min_labels=100, batch_every_days=1)
    batch = ch.candidates["batch:hgb"]
    seen: list[int] = []
    trained: list[tuple[int, int]] = []  # (examples it trained on, examples released before)
    original = batch._retrain

    def spy() -> bool:
        ok = original()  # the training set is fixed here (the fit runs in the background)
        trained.append((batch.training_on, len(seen)))
        return ok

    batch._retrain = spy  # type: ignore[method-assign]
    for i, (f, y, rel) in enumerate(data):
        ch.learn(f, y, rel, user=f"u{i % 400}")
        seen.append(rel)
    assert len(trained) >= 5
    assert all(on == before for on, before in trained)  # never the trigger or later ones
    # an online candidate's stored prediction for example k equals its prediction from
    # the state after k - 1 examples (a River pipeline built apart; the champion's pair
    # learns on arrays, whose dot products sum in another order: 1e-12)
    twin = OnlineCandidate("model:logreg", "logreg", {}, False)
    for k, (f, y, _) in enumerate(data[:2000]):
        want = twin.predict_x(twin.inputs(model_inputs(f)))
        assert abs(ch.scores["model:logreg"][k] - want) < 1e-12, k
        twin.learn(f, y)


def test_no_calibration_rather_than_a_constant() -> None:
    """A window that cannot be calibrated increasingly leaves the raw score: a constant
    risk would tie every user (ROC-AUC 0.5 at an anchor, seen on the sparse profile when
    the BG/NBD candidate spoke before the first value fit)."""
    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.5).astype(float)
    assert platt(np.zeros(500), y, "logit") is None  # no fit yet: P(no purchase) 0 for all
    assert platt(rng.random(500), np.ones(500), "logit") is None  # one class
    assert platt(1 - y * 0.5 - rng.random(500) * 0.1, y, "logit") is None  # ranks backwards
    raw = rng.random(10)
    assert np.array_equal(calibrate(raw, None, "logit"), raw)


def test_the_batch_challenger_is_judged_without_its_own_future() -> None:
    """Each user is snapshotted twice, H/2 apart, with the same label and an input that
    identifies the user. A model trained on that user's other snapshot knows the label;
    judged by the model of the other fold (cross-fitting), the identifier is worthless."""
    h_days = 30
    rng = np.random.default_rng(5)
    c = BatchCandidate(("id", "noise"), every_days=3, min_examples=200, horizon_days=h_days)
    events = []
    for u in range(3000):
        t = int(rng.integers(0, 400)) * DAY
        label = bool(rng.random() < 0.5)
        for snap in (t, t + h_days // 2 * DAY):
            events.append((snap + h_days * DAY, {"id": float(u), "noise": rng.random()}, label))
    events.sort(key=lambda e: e[0])
    for release, f, label in events:
        c.queue(f, label, release, fold_of(f"u{int(f['id'])}"))
    scored = [(s, y) for s, y in c.flush() if not math.isnan(s)]
    assert len(scored) > 4000 and c.retrains > 50
    auc = roc_auc_score([y for _, y in scored], [s for s, _ in scored])
    assert auc < 0.56, auc
    # the newest model does know the identifiers it learned (it serves, not judges)
    x = np.array([[f["id"], f["noise"]] for _, f, _ in events[-1000:]])
    assert roc_auc_score([y for _, _, y in events[-1000:]], c.score_rows(x)) > 0.6


def test_decisions_fall_early_and_judge_only_mature_examples() -> None:
    """Decisions at every/8, /4, /2 and then every ``every``; each judges every eligible
    candidate on the same newest examples: min(judge, window), and once there are
    MIN_JUDGED of them only those after the first ``min_labels`` (brute force below)."""
    from core.champion import MIN_JUDGED, due

    assert [n for n in range(1, 1700) if due(n, 400)] == [50, 100, 200, 400, 800, 1200, 1600]
    data = stream(1600, seed=6)
    ch = Champion(window=900, every=400, min_labels=300, judge=600, batch_every_days=1)
    seen = []
    for i, (f, y, rel) in enumerate(data):
        ch.learn(f, y, rel, user=f"u{i % 300}")
        if due(i + 1, 400) and ch.decided:  # what the decision saw, copied now
            seen.append((i + 1, dict(ch.decided), list(ch.labels),
                         {n: list(v) for n, v in ch.scores.items()}))
            ch.decided = {}
    assert [n for n, *_ in seen] == [50, 100, 200, 400, 800, 1200, 1600]
    for n, values, labels, scores in seen:
        j = min(600, len(labels))
        if n - 300 >= MIN_JUDGED:
            j = min(j, n - 300)  # 800: the newest 500, not 600
        y = np.array(labels[-j:])
        for name, v in values.items():
            assert v == pytest.approx(roc_auc_score(y, scores[name][-j:]), abs=1e-9), (n, name)
        if n >= 400:
            assert {"model:logreg", "bgnbd", RULE_NAME} <= set(values), n


def test_the_batch_fit_in_the_background_serves_at_a_fixed_example() -> None:
    """Which model scores which example depends on the stream only: a fit in the worker
    process, a fit that takes long (in a thread here; the learner waits at the serving
    point), a worker process killed under a fit (redone in the learner's process) or
    between fits (the next fit gets a new process), checkpoints taken while a fit is
    under way, and a synchronous fit (serve_after 0, waited for at once) give these
    exact scores; the models trained at a trigger first score the examples released
    ``serve_after_days`` later."""
    import os
    import signal
    import time
    from concurrent.futures import ThreadPoolExecutor

    import core.batch as batch_mod
    from core import fit_process

    data = stream(2400, seed=8)

    def run(cand: BatchCandidate, slow: bool = False, pickle_every: int = 0,
            kill: str = "") -> tuple[list[float], list[tuple[int, int]]]:
        fit, pool = batch_mod._fit, fit_process.pool
        if slow:
            threads = ThreadPoolExecutor(1)
            batch_mod._fit = lambda *a: (time.sleep(0.05), fit(*a))[1]  # type: ignore[assignment]
            fit_process.pool = lambda: threads  # type: ignore[assignment]
        served: list[tuple[int, int]] = []  # (trigger, release) where a model started
        killed = 0
        try:
            for i, (f, y, rel) in enumerate(data):
                before, trigger = cand.retrains, cand.trained_at
                cand.queue(f, y, rel, fold_of(f"u{i % 500}"))
                busy = cand.job is not None
                idle = not busy and cand.retrains == 1
                if not killed and ((kill == "busy" and busy) or (kill == "idle" and idle)):
                    procs = fit_process._POOL._processes  # type: ignore[union-attr]
                    killed = next(iter(procs))
                    os.kill(killed, signal.SIGKILL)
                if cand.retrains != before:  # the fit of ``trigger`` serves from here
                    served.append((trigger, rel))
                if pickle_every and i % pickle_every == 0:
                    cand = pickle.loads(pickle.dumps(cand))
            assert not kill or (killed and killed not in fit_process._POOL._processes)  # type: ignore[union-attr]
            return [s for s, _ in cand.flush()], served
        finally:
            batch_mod._fit, fit_process.pool = fit, pool  # type: ignore[assignment]

    def new(after: float) -> BatchCandidate:
        return BatchCandidate(ALL_INPUTS, every_days=2, min_examples=300,
                              serve_after_days=after, max_iter=20)

    scores, served = run(new(1.0))
    assert len(served) >= 4
    releases = sorted({rel for _, _, rel in data})  # a release every day here
    for trigger, rel in served:  # each serves from the first release a day after its trigger
        assert rel == min(r for r in releases if r >= trigger + DAY), (trigger, rel)
    assert [t for t, _ in served][:3] == [DAY, 3 * DAY, 5 * DAY]  # every 2 days from the first
    for other in (run(new(1.0), slow=True)[0], run(new(1.0), pickle_every=37)[0],
                  run(new(1.0), kill="busy")[0], run(new(1.0), kill="idle")[0]):
        assert np.array_equal(np.array(other), np.array(scores), equal_nan=True)
    now, served_now = run(new(0.0))  # the old synchronous behaviour: serves at the trigger
    assert [rel for _, rel in served_now][:3] == [DAY, 3 * DAY, 5 * DAY]
    assert not np.array_equal(np.array(now), np.array(scores), equal_nan=True)
    # by default a fit serves one schedule step after its trigger, when the next starts
    _, served_step = run(BatchCandidate(ALL_INPUTS, every_days=2, min_examples=300,
                                        max_iter=20))
    assert served_step[:2] == [(DAY, 3 * DAY), (3 * DAY, 5 * DAY)]


def test_a_checkpoint_holds_the_arrays_of_the_linear_pair() -> None:
    """The model and the stacked candidate learn on arrays (core.fast_linear): a pickle
    taken mid-stream holds River objects equal to pipelines that learned the same
    examples through River, serves the same risks, and learns on exactly as the
    original does."""
    data = stream(1500, seed=9)
    ch = Champion(window=1000, every=250, min_labels=200, batch=False)
    twin = OnlineCandidate("stacked:logreg", "logreg", {"lr": 0.005}, True)
    for i, (f, y, rel) in enumerate(data[:1000]):
        ch.learn(f, y, rel, user=f"u{i}")
        twin.learn(f, y)
    copy = pickle.loads(pickle.dumps(ch))
    got = copy.candidates["stacked:logreg"].pipeline.steps["LogisticRegression"].weights
    want = twin.pipeline.steps["LogisticRegression"].weights
    assert sorted(got) == sorted(want)
    assert all(abs(got[k] - want[k]) < 1e-12 for k in want)
    feats = [f for f, _, _ in data[1000:1100]]
    risks, _ = copy.raw_scorer("stacked:logreg", 1).score(feats)
    assert max(abs(r - twin.predict(f)) for r, f in zip(risks, feats, strict=True)) < 1e-12
    for i, (f, y, rel) in enumerate(data[1000:]):
        ch.learn(f, y, rel, user=f"v{i}")
        copy.learn(f, y, rel, user=f"v{i}")
    for name in ("model:logreg", "stacked:logreg"):
        assert list(ch.scores[name]) == list(copy.scores[name])
