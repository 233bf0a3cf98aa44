"""Bad settings and unreachable services: every command ends with one line, quickly.

The real ``churnstream`` console script runs as a subprocess against the real
session services (so that only the one broken thing is broken); each case
expects a non-zero exit, nothing on stdout, exactly one line on stderr that
names the problem, within ``BOUND`` seconds (the waits for Kafka and Redis are
bounded by CHURN_CONNECT_TIMEOUT, 3 s by default).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.embedded import EmbeddedServices
from services.redis_server import free_port
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration

SCRIPT = Path(sys.executable).with_name("churnstream")
BOUND = 8.0
ALL = ("worker", "learner", "api", "replay", "fit-value", "simulate", "evaluate")


@dataclass(frozen=True)
class Case:
    name: str
    commands: tuple[str, ...]
    env: dict[str, str]
    expect: str  # in the line; {redis} = the session Redis's host:port
    code: int
    env_file: dict[str, str] = field(default_factory=dict)


CASES = [
    Case("partitions-0", ALL, {"CHURN_PARTITIONS": "0"},
         "invalid setting CHURN_PARTITIONS=0: Input should be greater than or equal to 1", 2),
    Case("batch-size-abc", ALL, {"CHURN_BATCH_SIZE": "abc"},
         "invalid setting CHURN_BATCH_SIZE=abc: Input should be a valid integer", 2),
    Case("redis-url-notaurl", ALL, {"CHURN_REDIS_URL": "notaurl"},
         "invalid setting CHURN_REDIS_URL=notaurl: expected redis://host:port/db", 2),
    Case("horizon-0", ALL, {"CHURN_HORIZON_DAYS": "0"},
         "invalid setting CHURN_HORIZON_DAYS=0: Input should be greater than or equal to 1", 2),
    Case("misspelt-name", ALL, {"CHURN_HORIZN_DAYS": "90"},
         "unknown setting CHURN_HORIZN_DAYS (did you mean CHURN_HORIZON_DAYS?)", 2),
    Case("misspelt-name-in-services-file", ("worker", "api"), {},
         "unknown setting CHURN_REDIS_ULR in {env_file} (did you mean CHURN_REDIS_URL?)", 2,
         env_file={"CHURN_REDIS_ULR": "redis://127.0.0.1:6379/0"}),
    Case("redis-unreachable", ("worker", "learner", "api", "fit-value"),
         {"CHURN_REDIS_URL": "redis://127.0.0.1:1/0"},
         "Redis at redis://127.0.0.1:1/0 unreachable after 3.0 s (Connection refused)", 1),
    Case("kafka-unreachable", ("worker", "learner", "replay", "simulate"),
         {"CHURN_KAFKA_BOOTSTRAP": "127.0.0.1:1"},
         "Kafka at 127.0.0.1:1 unreachable after 3.0 s (Connection refused)", 1),
    Case("kafka-is-not-kafka", ("worker",), {"CHURN_KAFKA_BOOTSTRAP": "{redis}"},
         "Kafka at {redis} unreachable after 3.0 s (no reply to ApiVersions)", 1),
    Case("connect-timeout-setting", ("learner",),
         {"CHURN_KAFKA_BOOTSTRAP": "127.0.0.1:1", "CHURN_CONNECT_TIMEOUT": "1"},
         "Kafka at 127.0.0.1:1 unreachable after 1.0 s (Connection refused)", 1),
    Case("api-port-taken", ("api",), {}, "cannot listen on 127.0.0.1:{busy} (", 1),
]


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _argv(command: str, tmp: Path, api_port: int) -> list[str]:
    log = tmp / "log.jsonl"
    log.write_text('{"user_id": "u", "event_type": "view", "event_time": 1572566400000}\n')
    return {"api": ["api", "--port", str(api_port)], "replay": ["replay", str(log)],
            "simulate": ["simulate", "--users", "5", "--days", "3", "--quiet"],
            "evaluate": ["evaluate", str(log), "--out", str(tmp / "eval"), "--quiet"],
            }.get(command, [command])


@pytest.mark.parametrize("case,command", [pytest.param(c, cmd, id=f"{c.name}-{cmd}")
                                          for c in CASES for cmd in c.commands])
def test_one_line_and_a_quick_exit(services: EmbeddedServices, tmp_path: Path,
                                   busy_port: int, case: Case, command: str) -> None:
    redis_addr = services.redis.url.removeprefix("redis://").split("/")[0]
    env_file = tmp_path / "services.env"
    fmt = {"redis": redis_addr, "busy": str(busy_port), "env_file": str(env_file)}
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CHURN_")}
    name = tmp_path.name[-12:]
    env.update(services.env, CHURN_ENV_FILE=str(env_file), CHURN_STATE_DIR=str(tmp_path),
               CHURN_EVENTS_TOPIC=f"events-{name}", CHURN_DLQ_TOPIC=f"dlq-{name}",
               CHURN_TRAINING_TOPIC=f"train-{name}", CHURN_ALERTS_TOPIC=f"alerts-{name}",
               CHURN_APP_ID=f"g{name}", CHURN_REDIS_PREFIX=f"t{name}",
               CHURN_WORKER_METRICS_PORT="0", CHURN_LEARNER_METRICS_PORT="0",
               PYTHONWARNINGS="default")  # a warning on import would add a line
    env.update({k: v.format(**fmt) for k, v in case.env.items()})
    if case.env_file:
        env_file.write_text("".join(f"{k}={v}\n" for k, v in case.env_file.items()))
    api_port = busy_port if case.name == "api-port-taken" else free_port()
    t0 = time.monotonic()
    out = subprocess.run([str(SCRIPT), *_argv(command, tmp_path, api_port)], cwd=ROOT,
                         env=env, capture_output=True, timeout=60)
    elapsed = time.monotonic() - t0
    lines = out.stderr.decode().splitlines()
    assert out.returncode == case.code, (out.returncode, lines)
    assert out.stdout == b""
    assert len(lines) == 1 and lines[0].strip(), lines
    assert lines[0].startswith(f"churnstream {command}: "), lines[0]
    assert case.expect.format(**fmt) in lines[0], lines[0]
    assert elapsed < BOUND, f"{elapsed:.1f}s"


def test_deprecated_horizon_name_warns_and_the_worker_starts(
        services: EmbeddedServices, tmp_path: Path) -> None:
    """CHURN_CHURN_HORIZON_DAYS still works for now, with one warning line."""
    name = tmp_path.name[-12:]
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CHURN_")}
    env.update(services.env, CHURN_ENV_FILE=str(tmp_path / "absent.env"),
               CHURN_STATE_DIR=str(tmp_path), CHURN_EVENTS_TOPIC=f"events-{name}",
               CHURN_DLQ_TOPIC=f"dlq-{name}", CHURN_TRAINING_TOPIC=f"train-{name}",
               CHURN_ALERTS_TOPIC=f"alerts-{name}", CHURN_APP_ID=f"g{name}",
               CHURN_REDIS_PREFIX=f"t{name}", CHURN_LEARNER_METRICS_PORT="0",
               CHURN_CHURN_HORIZON_DAYS="45", CHURN_LOG_LEVEL="warn")
    proc = subprocess.Popen([str(SCRIPT), "learner"], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline().decode().strip()
        assert first == ("churnstream learner: warning: CHURN_CHURN_HORIZON_DAYS is "
                         "deprecated; use CHURN_HORIZON_DAYS")
        time.sleep(3.0)
        assert proc.poll() is None  # past the preflight, learning
    finally:
        proc.terminate()
        proc.wait(20)
