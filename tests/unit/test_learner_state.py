"""The learner's step skips and counts examples that would poison the model."""

from __future__ import annotations

import json

from core.features import FEATURE_NAMES
from core.settings import Settings
from stream.learner import new_state


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
