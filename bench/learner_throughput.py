"""Learner speed: examples/s of the learner's predict-then-learn step, in one run, against
the bare River pipeline on pre-built inputs (the floor no learner can beat).

    python bench/learner_throughput.py [--examples 50000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.model import model_inputs  # noqa: E402
from core.settings import Settings  # noqa: E402
from stream.learner import new_state  # noqa: E402
from tests.integration.test_learner import examples  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=50_000)
    n = ap.parse_args().examples
    data = examples(n)
    settings = Settings()

    import json

    parsed = [json.loads(v) for v in data]
    inputs = [(model_inputs(b["features"]), bool(b["label"])) for b in parsed]
    bare = new_state(settings).pipeline
    t = time.perf_counter()
    for x, y in inputs:
        bare.predict_proba_one(x)
        bare.learn_one(x, y)
    bare_rate = n / (time.perf_counter() - t)

    state = new_state(settings)
    t = time.perf_counter()
    for offset, raw in enumerate(data):
        state.learn(raw, offset)
    full_rate = n / (time.perf_counter() - t)
    print(f"bare River pipeline (predict + learn_one): {bare_rate:>8.0f} examples/s")
    print(f"learner step (JSON, inputs, metrics, predict + learn): {full_rate:>8.0f} examples/s")
    print(f"ratio: {full_rate / bare_rate:.2f}; target >= 20,000 examples/s: "
          f"{'met' if full_rate >= 20_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
