"""The worker's scoring step: aggregates -> features -> risks and reasons, per user.

    python bench/scoring_path.py [--users 1000] [--rounds 7]

What ``stream.worker.live.Live.prepare`` does for every user a batch touches or a sweep
rescores, measured in one run on the same users (synthetic aggregates, the calibrated
``stacked:logreg`` champion of ``bench/worker_throughput.py --learned 20000``, BG/NBD
inputs under a fixed fit), interleaved rounds, median:

- ``dicts``: one dict of features per user (``core.long_range.scoring_features``), the
  BG/NBD inputs added to each, the scorer's matrix built from the dicts (the path
  before ``core/feature_matrix.py``, still the path of scorers without ``score_rows``);
- ``matrix``: ``Live.prepare`` as the worker runs it (``FeatureRows`` from the
  aggregates, ``score_rows``), including the score writes it builds.

Prints CPU microseconds per user for each and their ratio, and checks that both give
the same risks and reasons.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from core.bgnbd import BGNBD
from core.features import DAY_MS, Aggregates
from core.gc_tuning import one_blas_thread
from core.long_range import scoring_features
from core.model import VALUE_INPUT_NAMES
from core.tiers import AlertGate, TierPolicy
from state.value_model import ValueModel
from stream.worker.live import Live


def aggregates(n: int, seed: int = 1) -> list[Aggregates]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        now = 1_600_000_000_000 + rng.randrange(10) * DAY_MS + rng.randrange(DAY_MS)
        today = now // DAY_MS
        days = tuple(sorted(rng.sample(range(today - 29, today + 1), rng.randint(1, 12))))
        n30 = len(days) + rng.randrange(20)
        n15 = rng.randint(0, n30)
        pdays = rng.randrange(6)
        first_pd = today - rng.randrange(30, 400) if pdays else -1
        last_pd = first_pd if pdays < 2 else today - rng.randrange(20)
        out.append(Aggregates(
            now_ms=now, n7=rng.randint(0, n15), n15=n15, n30=n30, active_days=days,
            purchases=rng.randrange(3), carts=rng.randrange(4), spend=rng.random() * 90,
            price_n=rng.randrange(8), price_mean=rng.random() * 50, price_m2=rng.random() * 99,
            switches=rng.randrange(5), brand_total=5, brand_max=rng.randint(1, 5),
            first_ms=now - rng.randrange(30, 200) * DAY_MS, last_ms=now - rng.randrange(DAY_MS),
            last_purchase_ms=last_pd * DAY_MS if pdays else -1,
            purchase_days=pdays, first_purchase_day=first_pd, value_n=pdays,
            value_sum=rng.random() * 300 if pdays else 0.0, purchase_days_90d=min(pdays, 2),
            purchase_days_180d=min(pdays, 3), purchase_days_365d=pdays,
            last_purchase_day=last_pd,
            purchase_gap_sumsq=float(rng.randrange(5000)) if pdays > 1 else 0.0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    import worker_throughput as wt

    one_blas_thread()  # as in the worker (both paths)
    state = wt.trained_state(20000, "stacked:logreg")
    scorer = state.scorer(1, 0)  # type: ignore[attr-defined]
    value = ValueModel(None, 30, params=BGNBD(0.5, 5.0, 0.7, 3.0))
    live = Live(None, None, TierPolicy(), AlertGate(), 30,  # type: ignore[arg-type]
                scorer=scorer, value=value)
    aggs = aggregates(args.users)
    users = [(f"u{i}", 0, a) for i, a in enumerate(aggs)]

    def dicts() -> tuple[list[float], list[object]]:
        feats = [scoring_features(a) for a in aggs]
        extra = value.inputs(aggs).tolist()
        for f, row in zip(feats, extra, strict=True):
            f.update(zip(VALUE_INPUT_NAMES, row, strict=True))
        return scorer.score(feats)  # type: ignore[no-any-return]

    def matrix() -> tuple[list[float], list[object]]:
        writes, _ = live.prepare(users)
        return [w.score.risk for w in writes], [w.score.reasons for w in writes]

    assert dicts() == matrix(), "the two paths disagree"
    print(f"scorer: {scorer.name} ({type(scorer).__name__}); {len(aggs)} users per call")
    rows = []
    for r in range(args.rounds):
        times = {}
        for name, fn in (("dicts", dicts), ("matrix", matrix)):
            t = time.process_time()
            for _ in range(5):
                fn()
            times[name] = (time.process_time() - t) / 5 / len(aggs) * 1e6
        rows.append(times)
        print(f"round {r + 1}: dicts {times['dicts']:.1f} us/user, matrix "
              f"{times['matrix']:.1f} us/user, ratio {times['dicts'] / times['matrix']:.2f}x",
              flush=True)
    ratios = sorted(t["dicts"] / t["matrix"] for t in rows)
    med = sorted(rows, key=lambda t: t["dicts"] / t["matrix"])[len(rows) // 2]
    print(f"dict path:   {med['dicts']:.1f} us CPU per user")
    print(f"matrix path: {med['matrix']:.1f} us CPU per user (Live.prepare, writes included)")
    print(f"ratio dicts / matrix: {ratios[len(ratios) // 2]:.2f}x (median of {len(rows)} "
          f"interleaved rounds; min {ratios[0]:.2f}, max {ratios[-1]:.2f})")


if __name__ == "__main__":
    main()
