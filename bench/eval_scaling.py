"""How ``churnstream evaluate`` grows with the population: the simulator's log of N users
over 180 days, evaluated in process (defaults: H = 30, an anchor every 7 days, the
logreg pipeline and the gradient-boosting baseline), for each N in one run.

    python bench/eval_scaling.py [--users 10000,100000] [--days 180]

Prints events, simulate and evaluate seconds, events/s and peak memory, and the
growth of the evaluation time against the growth of the log.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", default="10000,100000")
    ap.add_argument("--days", type=int, default=180)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    exe = [sys.executable, "-m", "cli.main"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.users.split(",")):
            log = Path(tmp, f"sim{n}.jsonl")
            t = time.perf_counter()
            subprocess.run([*exe, "simulate", "--users", str(n), "--days", str(args.days),
                            "--seed", str(args.seed), "--out", str(log)], cwd=ROOT, check=True,
                           stderr=subprocess.DEVNULL)
            sim_s = time.perf_counter() - t
            with open(log, "rb") as fh:
                events = sum(1 for _ in fh)
            t = time.perf_counter()
            out = subprocess.run([*exe, "evaluate", str(log), "--out", str(Path(tmp, f"r{n}")),
                                  "--quiet"], cwd=ROOT, check=True, capture_output=True,
                                 text=True).stdout
            eval_s = time.perf_counter() - t
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            rows.append((n, events, sim_s, eval_s))
            print(f"{n:>9,} users: {events:>12,} events; simulate {sim_s:7.1f} s; evaluate "
                  f"{eval_s:7.1f} s ({events / eval_s:,.0f} events/s); peak RSS so far "
                  f"{peak:,.0f} MB", flush=True)
            log.unlink()
            pooled = out.split("### Pooled")[1].split("###")[0] if "### Pooled" in out else ""
            print("  pooled:" + pooled.rstrip().replace("\n", "\n  "), flush=True)
    if len(rows) > 1:
        (n0, e0, _, s0), (n1, e1, _, s1) = rows[0], rows[-1]
        print(f"growth {n0:,} -> {n1:,} users: log x{e1 / e0:.1f}, evaluation time "
              f"x{s1 / s0:.1f}")


if __name__ == "__main__":
    main()
