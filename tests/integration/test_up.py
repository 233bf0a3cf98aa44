"""``churnstream up``: real services on free ports, addresses written, clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import redis

from core.settings import Settings
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_up_starts_writes_and_stops(tmp_path: Path) -> None:
    env_file = tmp_path / "svc.env"
    env = dict(os.environ, CHURN_ENV_FILE=str(env_file), CHURN_PARTITIONS="3",
               CHURN_STATE_DIR=str(tmp_path / "state"))
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "up"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C" in line:
            break
    text = "".join(lines)
    written = dict(ln.split("=", 1) for ln in env_file.read_text().split())
    bootstrap, url = written["CHURN_KAFKA_BOOTSTRAP"], written["CHURN_REDIS_URL"]
    assert bootstrap in text and url in text
    assert redis.Redis.from_url(url).ping()
    # worker/api/replay pick the file up by default; explicit env still wins
    os.environ["CHURN_ENV_FILE"] = str(env_file)
    try:
        assert Settings.load().redis_url == url
        os.environ["CHURN_REDIS_URL"] = "redis://elsewhere:1/0"
        assert Settings.load().redis_url == "redis://elsewhere:1/0"
    finally:
        os.environ.pop("CHURN_ENV_FILE")
        os.environ.pop("CHURN_REDIS_URL", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka.admin import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        topics = {t["name"]: t for t in admin.describe_topics(["events", "events.dlq"])}
    finally:
        admin.close()
    assert len(topics["events"]["partitions"]) == 3
    kafka_port, redis_port = int(bootstrap.rsplit(":", 1)[1]), int(url.split(":")[2].split("/")[0])
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert not _port_open(kafka_port) and not _port_open(redis_port)
    assert not env_file.exists()


def test_up_restarts_a_killed_redis_with_its_data(tmp_path: Path) -> None:
    """SIGKILL the Redis of `churnstream up`: it is back on the same port with what was
    written before (append-only file, fsync always), and the broker never went away."""
    import time

    env_file = tmp_path / "svc.env"
    env = dict(os.environ, CHURN_ENV_FILE=str(env_file), CHURN_PARTITIONS="2",
               CHURN_STATE_DIR=str(tmp_path / "state"))
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "up"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    out = []
    try:
        for line in proc.stdout:
            out.append(line)
            if "Ctrl-C" in line:
                break
        written = dict(ln.split("=", 1) for ln in env_file.read_text().split())
        bootstrap, url = written["CHURN_KAFKA_BOOTSTRAP"], written["CHURN_REDIS_URL"]
        r = redis.Redis.from_url(url)
        r.set("before-the-crash", "still here")
        pid = int(r.info("server")["process_id"])
        assert (tmp_path / "state" / "redis").is_dir()
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        for line in proc.stdout:
            out.append(line)
            if "redis is back" in line:
                break
        back = time.monotonic() - killed
        text = "".join(out)
        assert f"restarting on port {url.split(':')[2].split('/')[0]} from its append-only" in text
        r = redis.Redis.from_url(url)
        assert r.get("before-the-crash") == b"still here"
        assert int(r.info("server")["process_id"]) != pid
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from kafka.admin import KafkaAdminClient
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            assert "events" in admin.list_topics()
        finally:
            admin.close()
        assert proc.poll() is None
        print(f"\nup: redis SIGKILLed -> serving its data again after {back:.2f}s")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_readyz_reports_an_unreachable_kafka(namespace) -> None:  # type: ignore[no-untyped-def]
    from services.redis_server import free_port
    from tests.integration.conftest import http_json

    namespace.extra_env["CHURN_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{free_port()}"  # nothing there
    url = namespace.start_api()
    code, body = http_json(url + "/readyz", timeout=20)
    assert code == 503
    assert body["checks"]["redis"] == "ok" and body["checks"]["kafka"].startswith("error")
    assert http_json(url + "/healthz")[0] == 200
