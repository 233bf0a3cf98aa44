"""The learner's step skips and counts examples that would poison the model."""

from __future__ import annotations

import json

from core.features import FEATURE_NAMES
from core.settings import Settings
from stream.learner.state import new_state


def example(label: object = 1, **overrides: object) -> bytes:
    features: dict[str, object] = {n: 1.0 for n in FEATURE_NAMES}
    features.update(overrides)
    return json.dumps({"features": features, "label": label}).encode()


def test_bad_examples_are_counted_and_skipped() -> None:
    state = new_state(Settings())
    bad = [b"not json", b"[1]", json.dumps({"label": 1}).encode(), example(label=2),
           example(label="1"), example(label=True), example(n_events_7d="x"),
           example(tenure_days=float("nan")), example(tenure_days=float("inf"))]
    for offset, raw in enumerate(bad):
        assert state.learn(raw, offset) is None
    assert state.invalid == len(bad) and state.examples == 0
    assert state.offset == len(bad) - 1  # skipped, never re-read
    assert state.learn(example(label=0), len(bad)) is not None
    assert state.examples == 1 and state.labels[0] == 1


def test_bad_long_range_and_value_inputs_are_counted_and_skipped() -> None:
    """The fields `long` and `value` of an example: wrong types, missing names and
    non-finite numbers are invalid examples (counted, skipped); nothing else is lost."""
    from core.long_range import LONG_RANGE_NAMES
    from core.model import VALUE_INPUT_NAMES

    good = {"features": {n: 1.0 for n in FEATURE_NAMES}, "label": 1,
            "long": {n: 2.0 for n in LONG_RANGE_NAMES},
            "value": {n: 0.5 for n in VALUE_INPUT_NAMES}}
    bad = [{**good, "long": [1, 2]}, {**good, "long": {"purchase_days_total": 1.0}},
           {**good, "long": {**good["long"], "purchase_gap_cv": "x"}},
           {**good, "long": {**good["long"], "purchase_gap_cv": float("nan")}},
           {**good, "value": "none"}, {**good, "value": {"bg_p_alive": 0.5}},
           {**good, "value": {**good["value"], "bg_p_alive": float("inf")}}]
    state = new_state(Settings())
    for offset, body in enumerate(bad):
        assert state.learn(json.dumps(body).encode(), offset) is None, body
    assert state.invalid == len(bad) and state.examples == 0
    assert state.learn(json.dumps(good).encode(), len(bad)) is not None
    assert state.examples == 1


def test_any_bytes_are_an_invalid_example_never_an_error() -> None:
    """Examples are decoded with orjson: bytes that are not UTF-8, JSON that orjson
    refuses (NaN literals, integers past 64 bits), empty records and random bytes are
    counted and skipped; the learner goes on."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    state = new_state(Settings())
    fixed = [b"", b"\xff\xfe{", b'{"features": NaN, "label": 1}',
             b'{"features": {}, "label": 1, "partition": 123456789012345678901234567890}']
    for offset, raw in enumerate(fixed):
        assert state.learn(raw, offset) is None
    assert state.invalid == len(fixed)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=200))
    def any_bytes(raw: bytes) -> None:
        before = state.invalid
        assert state.learn(raw, 0) is None
        assert state.invalid == before + 1

    any_bytes()
    assert state.examples == 0
    assert state.learn(example(label=0), 1) is not None and state.examples == 1


def test_checkpoints_that_name_classes_where_they_used_to_live_still_load() -> None:
    """A checkpoint pickled before the layout of issue 15 names ``stream.learner``,
    ``core.metrics`` and ``core.candidates`` for classes that moved: state.models maps
    them (every entry of its MOVED table is exercised here), and the state learns on."""
    import pickle
    import sys
    import types

    import pytest

    from core.fast_linear import SharedScaler
    from core.prequential import Prequential
    from state.models import MOVED, loads
    from stream.learner.state import LearnerState

    state = new_state(Settings())
    for i in range(50):
        state.learn(example(label=i % 2), i)
    classes = {"stream.learner": LearnerState, "core.metrics": Prequential,
               "core.candidates": SharedScaler}
    assert {(m, c.__name__) for m, c in classes.items()} == set(MOVED)
    saved = {c: c.__module__ for c in classes.values()}
    fakes = {m: types.ModuleType(m) for m in classes if m not in sys.modules}
    try:  # pickle as the old code did: each class under its old module
        for module, cls in classes.items():
            cls.__module__ = module
            setattr(sys.modules.get(module) or fakes[module], cls.__name__, cls)
        sys.modules.update(fakes)
        blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        for module, cls in classes.items():
            cls.__module__ = saved[cls]
            if module in sys.modules and module not in fakes:
                delattr(sys.modules[module], cls.__name__)
        for module in fakes:
            del sys.modules[module]
    for module in classes:
        assert module.encode() in blob
    with pytest.raises((ModuleNotFoundError, AttributeError)):
        pickle.loads(blob)  # what a plain unpickler makes of it
    old = loads(blob)
    assert isinstance(old, LearnerState) and old.examples == state.examples == 50
    assert type(old.metrics) is Prequential
    assert old.learn(example(label=1), 50) == state.learn(example(label=1), 50)


def test_quality_history_is_the_speaking_window_at_each_day_end() -> None:
    """One point per anchor day, taken when the next day's first example arrives: the
    speaking scorer's window then, with ROC-AUC by brute-force pair counting; a late
    example of a closed day opens no point."""
    import random

    from core.champion import example as champion_example
    from core.features import DAY_MS

    state = new_state(Settings(metrics_window=300, min_labels=50, champion_every=100))
    ch = state.champion
    assert ch is not None and state.history is not None
    rng = random.Random(7)
    want: list[tuple[int, int, str, float]] = []
    days = [10] * 120 + [11] * 150 + [12] * 90 + [11] * 5 + [14] * 60 + [15]
    for i, day in enumerate(days):
        if i and day > max(days[:i]):  # closes the newest day learned so far
            ch.flush()
            s, y = list(ch.scores[ch.champion]), list(ch.labels)
            pos = [a for a, b in zip(s, y, strict=True) if b]
            neg = [a for a, b in zip(s, y, strict=True) if not b]
            auc = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
            want.append((max(days[:i]) * DAY_MS, state.examples, ch.champion, auc))
        d = rng.uniform(0, 40)
        f = champion_example(d, rng)
        part = 1 if day < max(days[:i] or [0]) else 0  # a late day: another partition
        assert state.learn_example(f, int(rng.random() < (0.8 if d > 25 else 0.15)),
                                   (part, day * DAY_MS, i)) is not None
    got = [(p["t"], p["examples"], p["scorer"], p["rocauc"]) for p in state.history.points]
    assert [g[:3] for g in got] == [w[:3] for w in want] and len(got) == 4
    assert all(abs(g[3] - w[3]) < 1e-6 for g, w in zip(got, want, strict=True))
    assert state.summary()["history"] == state.history.points
