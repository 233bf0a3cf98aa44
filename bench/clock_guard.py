"""Per-event cost of the partition clock (core.clock.ClockGuard) on the worker's path.

    python bench/clock_guard.py [--events N] [--rounds R]

The baseline, measured in the same run: ``parse_event`` of the same events (the
worker parses every record). Both in interleaved rounds; medians; prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.clock import ClockGuard
from core.events import parse_event

T0 = 1_575_000_000_000
DAY_MS = 86_400_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    n = args.events
    users = [f"u{i % 5000}" for i in range(n)]
    times = [T0 + i * 500 for i in range(n)]
    raw = [json.dumps({"event_id": f"e{i}", "user_id": u, "event_type": "view",
                       "event_time": t}).encode()
           for i, (u, t) in enumerate(zip(users, times, strict=True))]
    guard_s, parse_s = [], []
    for _ in range(args.rounds):
        g = ClockGuard(DAY_MS, 2)
        g.observe(T0, "start")
        g.observe(T0 + 1000 * DAY_MS, "liar")  # one unconfirmed record held throughout
        observe = g.observe
        start = time.perf_counter()
        for t, u in zip(times, users, strict=True):
            observe(t, u)
        guard_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        for r in raw:
            parse_event(r)
        parse_s.append(time.perf_counter() - start)
    g_ns = statistics.median(guard_s) / n * 1e9
    p_ns = statistics.median(parse_s) / n * 1e9
    print(f"clock guard: {g_ns:.0f} ns/event; parse_event: {p_ns:.0f} ns/event; "
          f"ratio guard/parse {g_ns / p_ns:.4f} (median of {args.rounds} interleaved rounds, "
          f"{n} events)")


if __name__ == "__main__":
    main()
