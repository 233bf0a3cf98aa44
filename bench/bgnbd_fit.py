"""BG/NBD fit time for N customer summaries (issue 6: 1,000,000 in under a minute),
against one evaluation of the log-likelihood in the same run.

    python bench/bgnbd_fit.py [--customers 1000000]

Summaries are drawn from known parameters with ages of 1-180 whole days and recency
in whole days (as the worker keeps them, docs/design.md section 2), then fitted on every
row and on the distinct (x, t_x, T) rows with counts as weights. Last, the whole value
job of the learner (``stream.jobs.value_fit.fit_summaries``: distinct-row BG/NBD, Gamma-Gamma
on every customer's spend, CLV of every customer, RFM cut points and segment counts).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import gammagamma
from core.bgnbd import BGNBD, fit, loglik, simulate
from core.settings import Settings
from state.value_rows import SUMMARY
from stream.jobs.value_fit import GG_SAMPLE, fit_summaries


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    args = ap.parse_args()
    truth = BGNBD(r=0.5, alpha=8.0, a=0.8, b=2.5)
    rng = np.random.default_rng(5)
    T = rng.integers(1, 181, args.customers).astype(np.float64)
    t = time.perf_counter()
    x, t_x = simulate(truth, T, rng)
    t_x = np.floor(t_x)
    print(f"{args.customers:,} summaries drawn in {time.perf_counter() - t:.1f}s")
    t = time.perf_counter()
    loglik(truth, x, t_x, T)
    one = time.perf_counter() - t
    rows = np.stack([x, t_x, T], axis=1)
    uniq, counts = np.unique(rows, axis=0, return_counts=True)
    for name, args_ in (("every row", (x, t_x, T, None)),
                        (f"{len(uniq):,} distinct rows", (*uniq.T, counts))):
        t = time.perf_counter()
        got = fit(*args_)
        took = time.perf_counter() - t
        print(f"fit on {name}: {took:6.1f}s ({took / one:,.0f}x one likelihood pass of "
              f"{one * 1000:.0f} ms); r={got.r:.3f} alpha={got.alpha:.3f} a={got.a:.3f} "
              f"b={got.b:.3f} (truth {truth})")
    s = np.zeros(args.customers, SUMMARY)
    s["x"], s["t_x"], s["T"], s["n"] = x, t_x, T, x + 1
    s["spend"] = gammagamma.simulate(gammagamma.GammaGamma(4.0, 5.0, 60.0), x + 1, rng) * (x + 1)
    s["recency"], s["frequency"] = T - t_x, np.minimum(x + 1, 365)
    n, mean = s["n"].astype(float), s["spend"] / s["n"]
    t = time.perf_counter()
    full = gammagamma.fit(n, mean)
    t_full = time.perf_counter() - t
    pick = np.sort(np.random.default_rng(0).choice(len(n), min(len(n), GG_SAMPLE), replace=False))
    t = time.perf_counter()
    sub = gammagamma.fit(n[pick], mean[pick])
    t_sub = time.perf_counter() - t
    worst = max(abs(a - b) / b for a, b in zip(sub, full, strict=True))
    print(f"gamma-gamma on all {len(n):,} customers: {t_full:.1f}s; on a {len(pick):,} "
          f"subsample: {t_sub:.1f}s ({t_full / t_sub:.1f}x faster), parameters within "
          f"{100 * worst:.2f} % of the full fit")
    t = time.perf_counter()
    value, clv = fit_summaries(s, 0, Settings())
    took = time.perf_counter() - t
    print(f"value job (BG/NBD + Gamma-Gamma + CLV + RFM) on {args.customers:,} customers: "
          f"{took:6.1f}s ({took / one:,.0f}x one likelihood pass); gamma-gamma "
          f"p={value.params.gg.p:.2f} q={value.params.gg.q:.2f} "
          f"gamma={value.params.gg.gamma:.1f} (truth 4.0/5.0/60.0); "
          f"mean CLV {clv.mean():.1f}")


if __name__ == "__main__":
    main()
