"""Learner speed: examples/s of the learner's step with every candidate (core.champion),
in one run, against the single-pipeline learner of before the candidates and the bare
River pipeline on pre-built inputs (the floor no learner can beat).

    python bench/learner_throughput.py [--examples 50000]

Examples carry the 17 features, the long-range inputs and the BG/NBD inputs, as the
workers write them; 2,000 examples per release day (100,000 active users sampled at
1/30 per day give about 3,000), so the batch challenger retrains every 14,000 examples
(its default schedule: every 7 event-time days). The batch challenger fits in its own
process; the timed run starts once that process is up (a learner starts it long before
its first examples arrive).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.batch import warm_up  # noqa: E402
from core.long_range import LONG_RANGE_NAMES  # noqa: E402
from core.model import VALUE_INPUT_NAMES, make_pipeline, model_inputs  # noqa: E402
from core.prequential import Prequential  # noqa: E402
from core.settings import Settings  # noqa: E402
from stream.learner.state import LearnerState, new_state  # noqa: E402
from tests.integration.test_learner import examples  # noqa: E402

DAY = 86_400_000


def full_examples(n: int) -> list[bytes]:
    rng = random.Random(5)
    out = []
    for i, raw in enumerate(examples(n)):
        body = json.loads(raw)
        body["long"] = {name: rng.random() * 20 for name in LONG_RANGE_NAMES}
        body["value"] = {name: rng.random() for name in VALUE_INPUT_NAMES}
        body["release"] = i // 2000 * DAY
        out.append(json.dumps(body).encode())
    return out


def rate(state: LearnerState, data: list[bytes]) -> float:
    t = time.perf_counter()
    for offset, raw in enumerate(data):
        state.learn(raw, offset)
    if state.champion is not None:
        state.champion.flush()
    return len(data) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    n = args.examples
    data = full_examples(n)
    settings = Settings()
    parsed = [json.loads(v) for v in data]
    inputs = [(model_inputs({**b["features"], **b["long"]}), bool(b["label"])) for b in parsed]
    warm_up()  # a learner starts its fit process long before examples arrive
    rates: dict[str, list[float]] = {"bare": [], "single": [], "no_batch": [], "full": []}
    retrains = 0
    for _ in range(args.rounds):  # interleaved: the machine's noise hits every kind alike
        bare = make_pipeline("logreg", lr=settings.model_lr)
        t = time.perf_counter()
        for x, y in inputs:
            bare.predict_proba_one(x)
            bare.learn_one(x, y)
        rates["bare"].append(n / (time.perf_counter() - t))
        rates["single"].append(rate(LearnerState(
            make_pipeline("logreg", lr=settings.model_lr),
            Prequential(settings.metrics_window)), data))
        rates["no_batch"].append(rate(new_state(
            settings.model_copy(update={"champion_batch": False})), data))
        full_state = new_state(settings)
        rates["full"].append(rate(full_state, data))
        assert full_state.champion is not None
        retrains = full_state.champion.candidates["batch:hgb"].retrains
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"medians of {args.rounds} interleaved rounds, {n:,} examples each")
    print(f"bare River pipeline (predict + learn_one):          {med['bare']:>8.0f} examples/s")
    print(f"single-pipeline learner (before the candidates):    {med['single']:>8.0f} examples/s")
    print(f"every candidate but the batch challenger:           {med['no_batch']:>8.0f} examples/s")
    print(f"every candidate (batch retrained {retrains}x):             "
          f"{med['full']:>8.0f} examples/s  (rounds: "
          f"{', '.join(f'{r:.0f}' for r in rates['full'])})")
    full = med["full"]
    print(f"ratio to the single-pipeline learner: {full / med['single']:.2f}; target >= 10,000 "
          f"examples/s with every candidate: {'met' if full >= 10_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
