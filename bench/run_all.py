"""``make bench``: every benchmark in one go, then ``bench/results.md`` with the headline
lines (ratios against the baseline measured in the same run), each script's full
output, the machine's core count and the commit.

    python bench/run_all.py [--quick]

``--quick``: fewer rounds and smaller populations (a smoke run, not for the README).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADLINE = re.compile(r"ratio|budget|median|users/s|examples/s|bytes|growth|p99|evaluate |fit on",
                      re.I)


def benches(quick: bool) -> list[tuple[str, list[str]]]:
    return [
        ("foundation: worker vs trivial faust agent",
         ["worker_throughput.py", "--rounds", "2" if quick else "5"]),
        ("foundation: Redis memory per user", ["redis_memory.py"]),
        ("learner: examples/s vs bare River", ["learner_throughput.py"]),
        ("worker: per-event clock guard vs parse_event", ["clock_guard.py"]),
        ("scoring: feature matrix vs one dict per user",
         ["scoring_path.py", "--rounds", "3" if quick else "7"]),
        ("scoring: sweep of every user vs a bare read",
         ["sweep_throughput.py", "--users", "20000" if quick else "100000"]),
        ("API: lookups and Top-K vs a bare route",
         ["api_latency.py", "--users", "20000" if quick else "100000",
          "--rounds", "2" if quick else "3", "--seconds", "4" if quick else "8"]),
        ("console: every page's server time vs the 100 ms budget",
         ["console_pages.py", "--users", "20000" if quick else "1000000",
          "--requests", "30" if quick else "100"]),
        ("console: the monthly counters' cost per event",
         ["months_overhead.py", "--rounds", "2" if quick else "5"]),
        ("customer value: BG/NBD fit of 1M summaries",
         ["bgnbd_fit.py", "--customers", "100000" if quick else "1000000"]),
        ("customer value: summaries scan and CLV index on Redis vs redis-py",
         ["value_fit_redis.py", "--users", "50000" if quick else "200000"]),
        ("evaluation: 10k -> 100k users over 180 days",
         ["eval_scaling.py", "--users", "2000,10000" if quick else "10000,100000"]),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.md"))
    args = ap.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    sections, heads = [], []
    for title, cmd in benches(args.quick):
        print(f"== {title}: {' '.join(cmd)}", flush=True)
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, str(ROOT / "bench" / cmd[0]), *cmd[1:]],
                              cwd=ROOT, capture_output=True, text=True)
        took = time.perf_counter() - t
        out = proc.stdout.strip()
        print(out, flush=True)
        status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
        if proc.returncode:
            out += "\n" + proc.stderr.strip()[-3000:]
        lines = [x.strip() for x in out.splitlines() if HEADLINE.search(x)]
        heads.append((title, status, lines[-4:]))
        sections.append(f"## {title}\n\n`python bench/{' '.join(cmd)}` ({status}, "
                        f"{took:.0f} s)\n\n```\n{out}\n```\n")
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    md = [f"# Benchmark results\n\nCommit `{commit}`{' (with local changes)' if dirty else ''}"
          f", {now}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.machine()}.{' Quick run (--quick).' if args.quick else ''} Every "
          "ratio is against a baseline measured in the same run; the machine is noisy, "
          "so the scripts interleave rounds and report medians.\n",
          "| benchmark | status | headline |", "|---|---|---|"]
    for title, status, lines in heads:
        md.append(f"| {title} | {status} | {'<br>'.join(lines) or '-'} |")
    Path(args.out).write_text("\n".join(md) + "\n\n" + "\n".join(sections))
    print(f"\nwrote {args.out}")
    if any(s != "ok" for _, s, _ in heads):
        sys.exit(1)


if __name__ == "__main__":
    main()
