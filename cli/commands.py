"""What each ``churnstream`` command does, once :mod:`cli.main` has parsed it and
checked its settings and services. Each command imports the room that does the work."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from core.events import Event, Rejected


def cmd_up(args: argparse.Namespace) -> int:
    from services.embedded import EmbeddedServices
    from stream.topics import ensure_topics

    settings = args.settings
    # Redis' append-only file keeps its data across a Redis restart within this run. The
    # embedded broker keeps nothing across runs (memory storage), so the state of an
    # earlier run would not match the new, empty topics: it is discarded.
    redis_dir = settings.state_dir / "redis"
    if redis_dir.exists():
        shutil.rmtree(redis_dir)
    redis_dir.mkdir(parents=True)
    svc = EmbeddedServices(args.kafka_port, args.redis_port, str(redis_dir.resolve()),
                           durable=True).start()
    code: int | None = 0
    try:
        env_file = svc.write_env_file()
        ensure_topics(svc.settings(partitions=args.settings.partitions))
        print(f"kafka bootstrap: {svc.broker.bootstrap}\nredis url:       {svc.redis.url}\n"
              f"redis data:      {redis_dir}/ (append-only file, fsync always; restarted "
              f"if it dies)\nwritten to {env_file} (worker/api/replay read it by default)\n"
              "Ctrl-C stops both.", flush=True)
        code = _wait_for_signal(lambda: svc.supervise(lambda m: print(m, flush=True)))
    finally:
        svc.stop()
        Path(svc.write_env_file()).unlink(missing_ok=True)
    return code or 0


def _wait_for_signal(check: Callable[[], int | None] | None = None) -> int | None:
    """Until SIGINT/SIGTERM, or until ``check`` (every 0.2 s) returns an exit code."""
    stop = {"flag": False}

    def handler(signum: int, frame: object) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not stop["flag"]:
        time.sleep(0.2)
        if check is not None and (code := check()) is not None:
            return code
    return None


def cmd_worker(args: argparse.Namespace) -> int:
    from stream.worker.app import run_worker

    sys.argv = [sys.argv[0]]  # faust's Worker parses argv
    return run_worker(args.settings)


def cmd_learner(args: argparse.Namespace) -> int:
    from stream.learner.app import run_learner

    run_learner(args.settings)
    return 0


def cmd_fit_value(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from redis.exceptions import RedisError

    from state.redis_store import connect, keys_for
    from state.value_store import ValueStore
    from stream.jobs.value_fit import describe, run_fit

    settings = args.settings

    async def once() -> int:
        client = connect(settings.redis_url)
        try:
            fit = await run_fit(ValueStore(client, keys=keys_for(
                client, settings.redis_prefix, settings.partitions)), settings)
        finally:
            await client.aclose()
        if fit is None:
            print(f"churnstream fit-value: fewer than {settings.value_min_customers} "
                  "customers: nothing fitted", file=sys.stderr)
            return 1
        print(json.dumps(describe(fit), indent=2))
        return 0

    try:
        return asyncio.run(once())
    except (OSError, RedisError) as exc:
        raise SystemExit(f"churnstream fit-value: Redis at {settings.redis_url}: {exc}") from None


def cmd_api(args: argparse.Namespace) -> int:
    from api.main import run_api

    run_api(args.settings)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from offline.replay import replay

    if args.file != "-" and not Path(args.file).is_file():
        raise SystemExit(f"churnstream replay: no such file: {args.file}")
    try:
        report = replay(Path(args.file), args.settings, rate=args.rate,
                        progress=not args.quiet)
    except ValueError as exc:  # e.g. a CSV header without the required columns
        raise SystemExit(f"churnstream replay: {args.file}: {exc}") from None
    print(report.summary())
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from offline.simulate import paced
    from offline.simulate_sparse import profile

    try:
        pop = profile(args.profile, args.users, args.days, args.seed, args.acquire_days)
    except ValueError as exc:
        raise SystemExit(f"churnstream simulate: {exc}") from None
    if args.truth:
        print(f"truth of {pop.write_truth(args.truth):,} users -> {args.truth}",
              file=sys.stderr)
    lines = pop.csv() if args.format == "csv" else pop.jsonl()
    if args.out:
        with open(args.out, "wb") as fh:
            n = sum(fh.write(line) > 0 for line in lines)
        print(f"{n - (args.format == 'csv'):,} events -> {args.out}", file=sys.stderr)
        return 0
    from offline.replay import replay_rows

    stream = pop.jsonl() if args.speedup is None else paced(pop, args.speedup)
    rows = ((line, line, None) for line in stream)
    report = replay_rows(rows, args.settings, rate=args.rate, progress=not args.quiet,
                         source="simulate")
    print(report.summary())
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.model import make_pipeline
    from offline import report as eval_report
    from offline.evaluate import EvalConfig, run
    from offline.replay import read_rows, validate_row

    settings = args.settings
    allowed = settings.allowed_types()

    try:
        cfg = EvalConfig.from_settings(
            settings, horizon_days=args.horizon, every_days=args.every,
            first_day=args.first_day, sample_rate=args.sample_rate, warmup_days=args.warmup,
            ks=tuple(float(k) / 100 for k in args.k.split(",")),
            pipelines=tuple(p for p in args.pipelines.split(",") if p),
            min_labels=args.min_labels, hgb=not args.no_hgb, bgnbd=not args.no_bgnbd)
        for name in cfg.pipelines:  # an unknown pipeline fails now, not at the first anchor
            make_pipeline(name.removesuffix("+value"))
    except (ValueError, ImportError, AttributeError) as exc:
        raise SystemExit(f"churnstream evaluate: {exc}") from None
    if not Path(args.file).is_file():
        raise SystemExit(f"churnstream evaluate: no such file: {args.file}")

    def events() -> Iterator[Event | Rejected]:
        for _, body, reason in read_rows(Path(args.file)):
            yield validate_row(body, allowed) if body is not None else Rejected(
                reason or "payload:unreadable")

    try:
        report = run(events(), cfg, progress=not args.quiet)
    except ValueError as exc:  # e.g. a CSV header without the required columns
        raise SystemExit(f"churnstream evaluate: {args.file}: {exc}") from None
    files = eval_report.write(report, Path(args.out))
    print(Path(args.out, "report.md").read_text().split("\n\nScorers:")[0])
    print(f"\nreport: {', '.join(str(f) for f in files)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from services.embedded import EmbeddedServices
    from stream.topics import ensure_topics

    svc = EmbeddedServices().start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        svc.write_env_file()
        env = dict(os.environ, **svc.env, CHURN_KAFKA_SESSION_TIMEOUT="3")
        # a small demo population: snapshot more users so the model takes over sooner
        env.setdefault("CHURN_LABEL_SAMPLE_RATE", "0.2")
        env.setdefault("CHURN_MODEL_VALUE_INPUTS", "1")  # and the model learns from it
        ensure_topics(svc.settings())
        exe = [sys.executable, "-m", "cli.main"]
        procs.append(subprocess.Popen([*exe, "worker"], env=env))
        procs.append(subprocess.Popen([*exe, "learner"], env=env))
        procs.append(subprocess.Popen([*exe, "api", "--port", str(args.port)], env=env))
        sim = subprocess.Popen([*exe, "simulate", "--users", str(args.users), "--days",
                                str(args.days), "--rate", str(args.rate), "--quiet"], env=env)
        procs.append(sim)
        user = _first_user(svc.redis.url, args.settings.redis_prefix)
        api = f"http://127.0.0.1:{args.port}"
        print(f"\nchurnstream demo is running\n"
              f"  console:    {api}/console?refresh=10   (the overview fills as simulated "
              f"months pass)\n"
              f"  kafka {svc.broker.bootstrap}   redis {svc.redis.url}\n"
              f"  API docs:   {api}/docs   overview: curl -s {api}/v1/overview\n"
              f"  pipeline:   curl -s {api}/v1/status\n"
              f"  one user:   curl -s {api}/v1/users/{user}\n"
              f"  riskiest:   curl -s '{api}/v1/top?k=10'\n"
              f"  value:      curl -s '{api}/v1/top?sort=saved_value&k=10'   "
              f"curl -s {api}/v1/segments\n"
              f"              (after the first value fit: every 7 days of event time)\n"
              f"  model:      curl -s {api}/v1/model   (the rule scores until "
              f"CHURN_MIN_LABELS examples are learned)\n"
              f"  metrics:    {api}/metrics  http://127.0.0.1:9101/metrics (worker)  "
              f"http://127.0.0.1:9102/metrics (learner)\n"
              f"  Prometheus: scrape those three (rules: deploy/prometheus/rules.yml); Grafana: "
              f"import deploy/grafana/dashboards/*.json\n"
              f"  other tools: CHURN_ENV_FILE=.churnstream/services.env churnstream replay FILE\n"
              "  simulated traffic keeps flowing; Ctrl-C stops everything.\n", flush=True)
        _wait_for_signal(lambda: svc.supervise(lambda m: print(m, flush=True)))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        svc.stop()
    return 0


def _first_user(redis_url: str, redis_prefix: str, timeout: float = 60.0) -> str:
    """Some user the worker has already seen (for the demo's sample curl)."""
    import redis

    client = redis.Redis.from_url(redis_url, protocol=2)
    deadline = time.monotonic() + timeout
    prefix = f"{redis_prefix}:{{u:"
    while time.monotonic() < deadline:
        for key in client.scan_iter(match=prefix + "*", count=100):
            return str(key.decode()[len(prefix):-1])
        time.sleep(0.5)
    return "<user_id>"
