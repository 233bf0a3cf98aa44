"""Real services for integration tests: Tansu + Redis (session), worker and API processes.

Every test gets its own namespace (topics, consumer group, Redis key prefix), so
tests never share state and the broker is never restarted under a test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from services.embedded import EmbeddedServices
from services.redis_cluster import RedisCluster
from services.redis_server import free_port
from state.keys import Keys

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def services() -> Iterator[EmbeddedServices]:
    with EmbeddedServices() as svc:
        yield svc


def wait_until(cond: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def http_json(url: str, timeout: float = 10.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@dataclass
class Namespace:
    """One isolated churnstream deployment on the shared services."""

    svc: EmbeddedServices
    tmp: Path
    name: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    api_url: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    logs: list[Path] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ, **self.svc.env,
                    CHURN_EVENTS_TOPIC=f"events-{self.name}",
                    CHURN_DLQ_TOPIC=f"dlq-{self.name}", CHURN_REDIS_PREFIX=f"t{self.name}",
                    CHURN_TRAINING_TOPIC=f"train-{self.name}",
                    CHURN_ALERTS_TOPIC=f"alerts-{self.name}",
                    CHURN_APP_ID=f"g{self.name}", CHURN_KAFKA_SESSION_TIMEOUT="2",
                    CHURN_BATCH_WITHIN="0.05", CHURN_PARTITIONS="4",
                    CHURN_WORKER_METRICS_PORT="0", CHURN_LEARNER_METRICS_PORT="0",
                    CHURN_STATE_DIR=str(self.tmp / self.name),
                    CHURN_ENV_FILE=str(self.tmp / "absent.env"))
        env.update(self.extra_env)
        return env

    def settings(self):  # type: ignore[no-untyped-def]
        from core.settings import Settings

        env = self.env
        return Settings(kafka_bootstrap=env["CHURN_KAFKA_BOOTSTRAP"],
                        redis_url=env["CHURN_REDIS_URL"], events_topic=env["CHURN_EVENTS_TOPIC"],
                        dlq_topic=env["CHURN_DLQ_TOPIC"], redis_prefix=env["CHURN_REDIS_PREFIX"],
                        app_id=env["CHURN_APP_ID"], partitions=int(env["CHURN_PARTITIONS"]),
                        training_topic=env["CHURN_TRAINING_TOPIC"],
                        alerts_topic=env["CHURN_ALERTS_TOPIC"])

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        path = self.tmp / f"{self.name}-{args[0]}-{len(self.procs)}.log"
        self.logs.append(path)
        log = open(path, "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "cli.main", *args], env=self.env,
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def start_worker(self) -> subprocess.Popen[bytes]:
        return self.spawn("worker")

    def start_api(self) -> str:
        port = free_port()
        proc = self.spawn("api", "--port", str(port))
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError("api exited")
            try:
                return http_json(url + "/healthz", 1.0)[0] == 200
            except OSError:
                return False

        wait_until(up, 30, "api /healthz")
        self.api_url = url
        return url

    @property
    def cluster(self) -> bool:
        """State on a Redis Cluster (``CHURN_REDIS_URL=redis+cluster://``)."""
        return self.env["CHURN_REDIS_URL"].startswith("redis+cluster://")

    @property
    def keys(self) -> Keys:
        return Keys(f"t{self.name}", partitions=int(self.env["CHURN_PARTITIONS"])
                    if self.cluster else None)

    @property
    def model_meta(self) -> str:
        """The learner's checkpoint index (a global key: hash-tagged on a cluster)."""
        return f"{self.keys.global_prefix}:model:meta"

    def redis(self) -> Any:
        url = self.env["CHURN_REDIS_URL"]
        if self.cluster:
            return redis.RedisCluster.from_url(url.replace("redis+cluster://", "redis://"),
                                               protocol=2)
        return redis.Redis.from_url(url, protocol=2)

    def _merged(self, name: str, add: bool = False) -> dict[str, int]:
        r, out = self.redis(), {}
        for key in self.keys.shards(name):
            for k, v in r.hgetall(key).items():
                out[k.decode()] = out.get(k.decode(), 0) * add + int(v)
        return out

    def stats(self) -> dict[str, int]:
        return self._merged("stats", add=True)

    def consumed(self) -> int:
        s = self.stats()
        return sum(s.get(k, 0) for k in ("applied", "late", "late_outside", "duplicate",
                                         "rejected"))

    def wait_consumed(self, n: int, timeout: float = 240.0) -> None:
        def done() -> bool:
            for p in self.procs:
                if p.poll() is not None and p.returncode not in (0, -9, -15):
                    raise RuntimeError(f"process exited with {p.returncode}")
            return self.consumed() >= n

        wait_until(done, timeout, f"{n} events consumed", every=0.25)

    def clock(self) -> dict[str, int]:
        return self._merged("clock")

    def wait_learned(self, what: str = "every released example learned",
                     timeout: float = 60.0) -> None:
        """Wait until the learner's newest checkpoint holds every released example."""
        r, meta = self.redis(), self.model_meta
        wait_until(lambda: int(r.hget(meta, "examples") or 0)
                   == self.stats()["released"], timeout, what)

    def wait_scored(self, timeout: float = 60.0) -> None:
        """Wait until the sweeper has caught up with every partition's last anchor and
        every user has a score at or after its newest event (``consumed`` counts a batch
        before its scores land and before the anchors it crossed have run; sweeps run on
        a timer)."""
        from core.labels import DAY_MS
        from state.codec import decode_score, decode_state

        def settled() -> bool:
            clock = self.clock()
            for name, anchor in clock.items():
                if name.startswith("a:") and clock.get("s:" + name[2:], -1) < anchor:
                    return False
            for p, wm in self._merged("watermark").items():  # anchors due: core.labels
                if clock.get(f"a:{p}", -1) < (wm - 1) // DAY_MS * DAY_MS:
                    return False
            for h in self.user_hashes().values():
                st, s = decode_state(h), h.get(b"s")
                if st is None or s is None or decode_score(s).as_of_ms < st.last_ms:
                    return False
            return True

        wait_until(settled, timeout, "sweeps caught up and every user scored", every=0.25)

    def user_hashes(self) -> dict[bytes, dict[bytes, bytes]]:
        r, keys = self.redis(), self.keys
        return {keys.user_id_of(k.decode()).encode(): r.hgetall(k)
                for k in r.scan_iter(match=keys.user_scan_pattern(), count=1000)}

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    """A real 3-primary Redis Cluster (services/redis_cluster.py), one per test module."""
    c = RedisCluster(3).start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def namespace(services: EmbeddedServices, tmp_path: Path) -> Iterator[Namespace]:
    ns = Namespace(services, tmp_path)
    yield ns
    ns.stop()


def read_examples(ns: Namespace, expected: int) -> dict[tuple[int, int, str], dict]:  # type: ignore[type-arg]
    """Training examples by (partition, t, user); a repeat must be identical."""
    out: dict[tuple[int, int, str], dict] = {}  # type: ignore[type-arg]
    for raw in read_topic(ns.env["CHURN_KAFKA_BOOTSTRAP"], ns.env["CHURN_TRAINING_TOPIC"],
                          expected):
        ex = json.loads(raw)
        key = (ex["partition"], ex["t"], ex["user_id"])
        assert out.setdefault(key, ex) == ex
    return out


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[bytes]:
    """All values of a topic (at least ``expected``), read from the beginning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaConsumer
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=2000,
                             group_id=None)
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for msg in consumer:
                out.append(msg.value)
    finally:
        consumer.close()
    return out


def read_records(bootstrap: str, topic: str, expected: int, timeout: float = 30.0,
                 ) -> list[tuple[int, int, bytes | None, bytes]]:
    """All (partition, offset, key, value) of a topic (at least ``expected``), per
    partition in offset order."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaConsumer
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=2000,
                             group_id=None)
    out: list[tuple[int, int, bytes | None, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for msg in consumer:
                out.append((msg.partition, msg.offset, msg.key, msg.value))
    finally:
        consumer.close()
    return sorted(out, key=lambda r: (r[0], r[1]))
