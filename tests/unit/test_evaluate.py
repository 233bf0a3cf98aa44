"""``churnstream evaluate`` in process: the training examples are exactly those the
live path must release (tests/reference.py), rows and labels match a brute force over
the raw events, and no feature or score at an anchor depends on anything after it."""

from __future__ import annotations

import json
import random
from collections import defaultdict

import numpy as np
import pytest

from core.events import parse_event
from core.features import FEATURE_NAMES
from core.labels import Example
from offline.evaluate import AnchorRows, EvalConfig, Evaluator, run
from offline.simulate import Population
from tests.reference import DAY, Reference, close, ref_event_of_json, reference_examples

ALLOWED = frozenset({"view", "cart", "remove_from_cart", "purchase"})
CFG = EvalConfig(horizon_days=14, every_days=5, first_day=14, sample_rate=0.3,
                 warmup_days=10, min_labels=150, hgb=False)


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return list(Population(users=300, days=75, seed=21).jsonl())


def _events(lines: list[bytes]):  # type: ignore[no-untyped-def]
    return [parse_event(x, ALLOWED) for x in lines]


def _rows(lines: list[bytes], cfg: EvalConfig = CFG) -> dict[int, AnchorRows]:
    got: dict[int, AnchorRows] = {}
    run(_events(lines), cfg, on_anchor=lambda r: got.__setitem__(r.anchor_ms, r))
    return got


def test_training_examples_equal_the_reference(lines: list[bytes]) -> None:
    seen: list[Example] = []
    ev = Evaluator(CFG, on_release=seen.append)
    for e in _events(lines):
        ev.feed(e)  # type: ignore[arg-type]
    want = reference_examples({0: [ref_event_of_json(x) for x in lines]}, 14, 0.3, 10)
    assert min(t for _, t, _ in want) >= min(json.loads(x)["event_time"] for x in lines) \
        // DAY * DAY + 10 * DAY  # the warm-up: no snapshot in the first 10 days
    got = {(0, e.t_ms, e.user_id): (e.label, dict(e.features)) for e in seen}
    assert got.keys() == want.keys() and len(got) > 500
    for key, (label, feats) in got.items():
        assert label == want[key][0], key
        assert len(want[key][1]) == 26  # the 17 features and the long-range inputs
        assert all(close(feats[n], v) for n, v in want[key][1].items()), key
    assert ev.models["logreg"].examples == len(got)


def test_rows_and_labels_by_brute_force(lines: list[bytes]) -> None:
    rows: dict[int, AnchorRows] = {}
    out = run(_events(lines), CFG, on_anchor=lambda r: rows.__setitem__(r.anchor_ms, r))
    times: dict[str, list[int]] = defaultdict(list)
    for x in lines:
        d = json.loads(x)
        times[d["user_id"]].append(d["event_time"])
    h = 14 * DAY
    refs = [ref_event_of_json(x) for x in lines]
    settled = {a["anchor"] for a in out["anchors"]}
    assert len(settled) >= 9
    for t, r in rows.items():
        active = sorted(u for u, ts in times.items() if any(t - h < x <= t for x in ts))
        assert r.users == active
        if r.returned is None:
            continue
        came_back = np.array([any(t < x <= t + h for x in times[u]) for u in r.users])
        if any(a.startswith(_iso(t)) for a in settled):
            assert (r.labels() == (~came_back).astype(np.int8)).all()
    # features at one anchor against the independent reference
    t = sorted(rows)[3]
    ref = Reference()
    for e in refs:
        if e.t <= t:
            ref.add(e)
    r = rows[t]
    for i, uid in enumerate(r.users[:60]):
        want = ref.features(uid, t)
        assert all(close(r.features[i][k], want[n]) for k, n in enumerate(FEATURE_NAMES)), uid


def _iso(ms: int) -> str:
    from core.timefmt import rfc3339

    return rfc3339(ms)[:10]


def _same(a: AnchorRows, b: AnchorRows) -> None:
    assert a.users == b.users
    assert np.array_equal(a.features, b.features)
    assert a.scores.keys() == b.scores.keys()
    for k in a.scores:
        assert np.array_equal(a.scores[k], b.scores[k]), k


def test_nothing_after_an_anchor_changes_it(lines: list[bytes]) -> None:
    # every record trusted (clock_users=1): with the clock guard (core.clock) a record
    # far ahead is applied to its user before the anchors its confirmation passes, so a
    # future shuffled into any order may change those users' rows at those anchors
    cfg = EvalConfig(**{**CFG.__dict__, "hgb": True, "bgnbd": True, "clock_users": 1,
                        "pipelines": ("logreg", "logreg+value")})
    full = _rows(lines, cfg)
    anchors = sorted(full)
    assert len(anchors) >= 10
    times = [json.loads(x)["event_time"] for x in lines]
    for t in (anchors[2], anchors[6]):
        before = [x for x, tt in zip(lines, times, strict=True) if tt <= t]
        after = [x for x, tt in zip(lines, times, strict=True) if tt > t]
        # everything after t deleted (one event of a new user makes the clock pass t)
        sentinel = json.dumps({"event_id": "zz", "user_id": "zz", "event_type": "view",
                               "event_time": t + 1}).encode()
        _same(full[t], _rows([*before, sentinel], cfg)[t])
        # the future shuffled
        shuffled = after[:]
        random.Random(t).shuffle(shuffled)
        _same(full[t], _rows(before + shuffled, cfg)[t])
    for name in ("hgb", "bgnbd", "live:logreg+value"):  # the baselines and variant took part
        assert name in full[anchors[6]].scores, name


def test_bad_rows_are_counted_and_bad_settings_fail_early(
        lines: list[bytes], tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from cli.main import main

    monkeypatch.setenv("CHURN_ENV_FILE", "/nonexistent")
    bad = [b"not json", b'{"event_id": "x", "event_type": "view", "event_time": 5}',
           b'{"event_id": "y", "user_id": "u", "event_type": "teleport", "event_time": 5}']
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"\n".join([*lines[:2000], *bad, *lines[2000:]]) + b"\n")
    args = ["evaluate", str(log), "--out", str(tmp_path / "r"), "--quiet", "--no-hgb",
            "--horizon", "14", "--every", "5", "--first-day", "14"]
    assert main(args) == 0
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["log"]["events"] == len(lines) and rep["log"]["rejected_rows"] == 3
    assert sum(rep["log"]["rejected_by_reason"].values()) == 3
    for extra, says in ((["--k", "0"], "share"), (["--every", "0"], "every_days"),
                        (["--sample-rate", "2"], "sample_rate"),
                        (["--pipelines", "nope"], "unknown pipeline")):
        with pytest.raises(SystemExit, match=says):
            main([*args, *extra])
    with pytest.raises(SystemExit, match="no such file"):
        main(["evaluate", str(tmp_path / "missing.jsonl")])
    with pytest.raises(SystemExit):
        main(["simulate", "--users", "0", "--out", str(tmp_path / "s.jsonl")])


def test_an_event_years_ahead_changes_no_anchor(lines: list[bytes]) -> None:
    """One record of a wrong-clock user three years ahead, in the middle of the log: every
    anchor (users, features, labels, scores) is as without it; the clock never jumps."""
    times = [json.loads(x)["event_time"] for x in lines]
    liar = json.dumps({"event_id": "liar", "user_id": "liar", "event_type": "view",
                       "event_time": max(times) + 3 * 365 * DAY}).encode()
    mid = len(lines) // 2
    full = _rows(lines)
    got = _rows([*lines[:mid], liar, *lines[mid:]])
    assert got.keys() == full.keys() and len(full) >= 10
    for t in full:
        _same(full[t], got[t])
        if full[t].returned is not None:
            assert np.array_equal(full[t].returned, got[t].returned)


def test_the_report_writes_its_tables_and_four_plots(lines: list[bytes], tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``report.json``, ``report.md`` and the four PNGs (matplotlib renders them; they
    were looked at by eye when their layout changed): real PNG files, the reliability
    plot with its legend's Brier scores, the Markdown with the pooled Brier column."""
    import matplotlib  # noqa: F401  (the test extra installs it: no silent skip)

    from offline import report as eval_report

    report = run(_events(lines), CFG)
    files = eval_report.write(report, tmp_path)
    names = {f.name for f in files}
    assert names == {"report.json", "report.md", "lift_curve.png", "pr_curve.png",
                     "metrics_over_anchors.png", "calibration.png"}
    for f in files:
        if f.suffix == ".png":
            data = f.read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, f.name
    md = (tmp_path / "report.md").read_text()
    assert "| brier |" in md and "## Calibration (pooled)" in md
    saved = json.loads((tmp_path / "report.json").read_text())
    live = next(n for n in saved["pooled"] if n.startswith("live:"))
    assert 0 < saved["pooled"][live]["brier"] < 0.5


def test_evaluate_takes_the_live_settings_of_labels_value_fits_and_model_selection() -> None:
    """Every EvalConfig field with a Settings counterpart follows the settings (an
    evaluate that ignored CHURN_CHAMPION_MARGIN judged a different system); CLI options
    that were given win."""
    import dataclasses

    from core.settings import Settings
    from offline.evaluate import EvalConfig

    names = {"horizon_days": "churn_horizon_days", "sample_rate": "label_sample_rate",
             "warmup_days": "label_warmup_days"}
    changed = Settings(churn_horizon_days=45, label_sample_rate=0.2, label_warmup_days=3,
                       model_lr=0.002, min_labels=300, value_fit_every_days=14,
                       value_fit_lag_days=3, value_min_customers=50, metrics_window=5000,
                       champion_every=500, champion_window=800, champion_margin=0.01,
                       champion_metric="lift_at_10", champion_batch=False,
                       batch_every_days=3, model_handoff="count")
    cfg = EvalConfig.from_settings(changed)
    fields = {f.name for f in dataclasses.fields(EvalConfig)}
    shared = [n for n in fields if names.get(n, n) in Settings.model_fields]
    assert len(shared) == 15, sorted(shared)
    default = EvalConfig.from_settings(Settings())
    for name in shared:
        want = getattr(changed, names.get(name, name))
        assert getattr(cfg, name) == want != getattr(default, name), name
    assert cfg.handoff_compare is False and default.handoff_compare is True
    given = EvalConfig.from_settings(changed, horizon_days=90, min_labels=None)
    assert (given.horizon_days, given.min_labels) == (90, 300)
