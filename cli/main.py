"""``churnstream``: parse the command line, check the settings and the services the
command needs (:mod:`cli.preflight`), then dispatch (:mod:`cli.commands`)."""

from __future__ import annotations

import sys

from cli import preflight
from cli.parser import build_parser

__all__ = ["build_parser", "main"]

# services each command needs before it starts (cli/preflight.py checks them;
# redis-tcp: the hot path's plain-TCP Redis connection, so redis:// only)
NEEDS = {"worker": ("kafka", "redis-tcp"), "learner": ("kafka", "redis"),
         "fit-value": ("redis",), "api": ("redis-tcp", "listen", "playbook"), "replay": ("kafka",),
         "simulate": ("kafka",)}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    needs = NEEDS.get(args.cmd, ())
    if args.cmd == "simulate" and args.out:
        needs = ()  # a file: no services
    elif args.cmd == "simulate" and args.format == "csv":
        print("churnstream simulate: --format csv is for files (--out); Kafka gets JSON",
              file=sys.stderr)
        return 2
    overrides = {k: v for k, v in (("api_port", getattr(args, "port", None)),
                                   ("api_host", getattr(args, "host", None)))
                 if v and args.cmd == "api"}
    args.settings = preflight.run(args.cmd, needs, **overrides)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
