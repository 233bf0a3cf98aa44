"""The ``churnstream`` argument parser: every command and its options."""

from __future__ import annotations

import argparse
from typing import Any

from cli import commands


def _positive(kind: type) -> Any:
    """An argparse type: a number > 0, or a clear usage error."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="churnstream",
                                 description="The ``churnstream`` command line.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("up", help="start embedded Tansu + Redis and write their addresses")
    p.add_argument("--kafka-port", type=int, default=0)
    p.add_argument("--redis-port", type=int, default=0)
    p.set_defaults(func=commands.cmd_up)
    sub.add_parser("worker", help="run a stream worker").set_defaults(func=commands.cmd_worker)
    sub.add_parser("learner", help="learn the model from training.examples (one instance)"
                   ).set_defaults(func=commands.cmd_learner)
    sub.add_parser("fit-value", help="fit BG/NBD + Gamma-Gamma + RFM cuts on the customers "
                   "in Redis now; new version + value index"
                   ).set_defaults(func=commands.cmd_fit_value)
    p = sub.add_parser("api", help="run the HTTP API")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=commands.cmd_api)
    p = sub.add_parser("replay", help="send a CSV or JSON Lines log to Kafka")
    p.add_argument("file")
    p.add_argument("--rate", type=float, help="events per second (default: full speed)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=commands.cmd_replay)
    _add_simulate(sub)
    _add_evaluate(sub)
    p = sub.add_parser("demo", help="embedded services + worker + api + simulated traffic")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--days", type=int, default=120)
    p.add_argument("--rate", type=float, default=2000)
    p.set_defaults(func=commands.cmd_demo)
    return ap


def _add_simulate(sub: Any) -> None:
    p = sub.add_parser("simulate", help="simulated traffic to Kafka, or to a file with --out")
    p.add_argument("--users", type=_positive(int), default=2000)
    p.add_argument("--days", type=_positive(int), default=90)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--profile", choices=["ecommerce", "sparse"], default="ecommerce",
                   help="ecommerce: views, carts, purchases; sparse: purchases only, "
                        "BG/NBD buy-till-you-die with Gamma-Gamma spend")
    p.add_argument("--acquire-days", type=_positive(float),
                   help="sparse: customers arrive over this many days (default 90)")
    p.add_argument("--rate", type=_positive(float),
                   help="events per second (default: full speed)")
    p.add_argument("--speedup", type=_positive(float),
                   help="event time runs this many times faster than the wall clock")
    p.add_argument("--out", help="write to this file instead of Kafka")
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl",
                   help="file layout: JSON Lines, or the public e-commerce CSV")
    p.add_argument("--truth", help="also write each user's truth (JSON Lines) here")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=commands.cmd_simulate)


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="offline evaluation of a log: Top-K metrics, report")
    p.add_argument("file")
    p.add_argument("--out", default="evaluation", help="report folder (default: evaluation)")
    p.add_argument("--horizon", type=int, help="H in days (default: CHURN_HORIZON_DAYS)")
    p.add_argument("--every", type=int, default=7, help="days between evaluation anchors")
    p.add_argument("--first-day", type=int,
                   help="first anchor, days after the log's first midnight (default: H)")
    p.add_argument("--sample-rate", type=float,
                   help="training snapshot rate (default: CHURN_LABEL_SAMPLE_RATE)")
    p.add_argument("--warmup", type=int,
                   help="days without training snapshots (default: CHURN_LABEL_WARMUP_DAYS)")
    p.add_argument("--k", default="5,10,20", help="Top-K shares in percent")
    p.add_argument("--pipelines", default="logreg",
                   help="online pipelines, comma-separated (logreg, arf, module:factory); "
                        "a +value suffix adds BG/NBD inputs (e.g. logreg,logreg+value)")
    p.add_argument("--min-labels", type=int, help="default: CHURN_MIN_LABELS")
    p.add_argument("--no-hgb", action="store_true", help="skip the gradient-boosting baseline")
    p.add_argument("--no-bgnbd", action="store_true",
                   help="skip the BG/NBD expected-purchases baseline")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=commands.cmd_evaluate)
