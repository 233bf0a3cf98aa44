"""Where the full worker's time goes: one profiled run beside the Lua ceiling.

    python bench/worker_profile.py [--events 100000] [--py-spy]

The setting of ``bench/worker_throughput.py --learned 20000`` (the same runners, 4
partitions, the stacked candidate speaking), one round: the plain consumer + minimal
Lua ceiling, then the full worker. Prints both rates and their ratio, the worker's and
Redis's CPU per event, and Redis's time by command during the full run
(``INFO commandstats``; commands inside scripts are counted both on their own and in the
script's time). ``--py-spy``: the full worker runs under ``py-spy record`` (``pip install
py-spy``), and the busy samples of its event loop are summed per function, cumulative
and self, as shares.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import worker_throughput as wt

from services.embedded import EmbeddedServices
from stream.topics import ensure_topics


def spy_shares(raw: Path, top: int = 40) -> None:
    """Sum py-spy's raw (collapsed) stacks: the event loop's busy samples per frame."""
    cum: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        if "run_forever" not in stack or "_find_and_load" in stack or \
                "select (selectors.py" in frames[-1]:
            continue  # start-up imports, and the loop waiting for I/O
        total += int(n)
        own[frames[-1]] += int(n)
        for f in set(frames):
            cum[f] += int(n)
    print(f"busy samples of the event loop: {total}")
    for title, counts in (("cumulative", cum), ("self", own)):
        print(f"--- {title}")
        for f, n in counts.most_common(top):
            print(f"{n / max(1, total) * 100:5.1f}% {f}")


def script_split(r: redis.Redis, n: int) -> None:
    """Redis's time per script (EVALSHA calls by sha, from the slow log of every call)."""
    from state.scripts import SCRIPTS

    names = {hashlib.sha1(src.encode()).hexdigest(): name for name, src in SCRIPTS.items()}
    usec: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    for e in r.slowlog_get(1_000_000):
        args = e["command"].split()
        cmd = args[0].decode().upper() if args else "?"
        if cmd == "EVALSHA" and len(args) > 1:
            cmd = "script " + names.get(args[1].decode(), args[1].decode()[:8])
        elif cmd == "EVAL":
            cmd = "EVAL (inline)"
        usec[cmd] += e["duration"]
        calls[cmd] += 1
    r.config_set("slowlog-log-slower-than", 10_000)
    print("Redis time by script or top-level command (slow log of every call):")
    for cmd, us in usec.most_common(12):
        print(f"  {cmd:26s} calls {calls[cmd]:>8}  {us / n:6.2f} us/event")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--py-spy", action="store_true")
    args = ap.parse_args()
    state = wt.trained_state(20000, "stacked:logreg")
    with EmbeddedServices() as svc, tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, **svc.env, CHURN_KAFKA_SESSION_TIMEOUT="2",
                   CHURN_PARTITIONS="4", CHURN_STATE_DIR=tmp,
                   CHURN_ENV_FILE=os.path.join(tmp, "none.env"), CHURN_MODEL_POLL_SECONDS="0.2")
        settings = svc.settings(partitions=4)
        assert svc.broker.proc is not None and svc.redis.proc is not None
        wt.SERVER_PIDS.update(broker=svc.broker.proc.pid, redis=svc.redis.proc.pid)
        ensure_topics(settings)
        n = wt.produce(svc.broker.bootstrap, settings.events_topic, args.events, 20000)
        wt.save_model(svc.redis.url, "churn", state)
        r = redis.Redis.from_url(svc.redis.url, protocol=2)
        lua = wt.run("lua", dict(env, CHURN_REDIS_PREFIX="plain"), n, "bench-lua")
        r.config_resetstat()
        r.config_set("slowlog-log-slower-than", 0)  # every call, for the split by script
        r.config_set("slowlog-max-len", 1_000_000)
        r.slowlog_reset()
        raw = Path(tmp) / "spy.txt"
        if args.py_spy:
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            run = wt.subprocess.run

            def spied(cmd: list[str], **kw: Any) -> Any:
                return run([spy, "record", "-r", "250", "-f", "raw", "-o", str(raw), "--",
                            *cmd], **kw)

            wt.subprocess.run = spied  # type: ignore[assignment]
        full = wt.run("full", env, n, "bench-full")
        print(f"plain + minimal Lua {lua['rate']:.0f}/s, full worker {full['rate']:.0f}/s: "
              f"ratio {full['rate'] / lua['rate']:.3f}; worker CPU {full['us_per_event']:.1f} "
              f"us/event; Redis CPU {full['cpu']['redis'] / n * 1e6:.1f} us/event (the "
              f"ceiling's {lua['cpu']['redis'] / n * 1e6:.1f})")
        for k, v in sorted(r.info("commandstats").items(), key=lambda kv: -kv[1]["usec"])[:12]:
            print(f"  {k:26s} calls {v['calls']:>8}  {v['usec'] / n:6.2f} us/event")
        script_split(r, n)
        if args.py_spy:
            spy_shares(raw)


if __name__ == "__main__":
    main()
