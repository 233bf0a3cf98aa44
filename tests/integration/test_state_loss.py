"""Redis loses its state under a real worker: detected, rebuilt from Kafka, exact.

Each test runs its own redis-server (FLUSHALL and restarts must not touch the session
Redis other tests share), the real Tansu broker, a real worker subprocess and the
API, and compares the features of every user with the independent reference.
"""

from __future__ import annotations

import re
import signal
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core.timefmt import parse_time
from offline.replay import replay
from services.redis_server import RedisServer, free_port
from tests.datagen import generate, write_csv
from tests.integration.conftest import Namespace, http_json, wait_until
from tests.reference import DAY, Reference, mismatches, read_raw_csv

pytestmark = pytest.mark.integration
LOST = "redis state lost under a running worker"
BEHIND = "redis state is behind the consumer group's position"


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Reference, int]:
    rows = generate(users=500, days=65, seed=7)
    path = tmp_path_factory.mktemp("loss") / "events.csv"
    write_csv(rows, str(path))
    ref = Reference()
    for ev in read_raw_csv(str(path)):
        if ev is not None:
            ref.add(ev)
    return path, ref, sum(1 for r in rows if r.reason is None)  # sent to `events`


@pytest.fixture
def own_redis(namespace: Namespace) -> Iterator[list[RedisServer]]:
    """A redis-server of the test's own; the list holds the current one (restarts)."""
    servers = [RedisServer().start()]
    namespace.extra_env["CHURN_REDIS_URL"] = servers[0].url
    # batches of 1000: "a third consumed" then means batches committed before the loss (a
    # first batch of 4000 or more can hold the loss point itself; applying it again
    # rebuilds everything with nothing to replay, logged as such)
    namespace.extra_env["CHURN_BATCH_SIZE"] = "1000"
    yield servers
    servers[-1].stop()


def _timings(text: str, since: float) -> str:
    """Detection delay after ``since`` (wall clock) and replay time, from the worker log."""
    from datetime import datetime

    def at(pattern: str) -> re.Match[str]:
        found = re.search(r"^\[(\S+ \S+)\] .*" + pattern, text, re.M)
        assert found, pattern
        return found

    det = datetime.strptime(at("rebuilding from Kafka").group(1), "%Y-%m-%d %H:%M:%S,%f")
    done = at(r"redis state rebuilt: (\d+) records replayed in ([0-9.]+)s")
    return (f"detected {det.timestamp() - since:.2f}s after the loss, {done.group(2)} records "
            f"replayed in {done.group(3)}s")


def _with_metrics(ns: Namespace) -> int:
    port = free_port()
    ns.extra_env.update(CHURN_WORKER_METRICS_PORT=str(port), CHURN_LOG_LEVEL="info")
    return port


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def _replay_in_background(ns: Namespace, path: Path) -> threading.Thread:
    sender = threading.Thread(target=replay, args=(path, ns.settings()),
                              kwargs={"progress": False, "rate": 6000})
    sender.start()
    return sender


def _assert_every_user_exact(ns: Namespace, ref: Reference, sent: int) -> None:
    """Counters as if each event was consumed once; every user's features (at the
    stored score's time) equal the reference's."""
    ns.wait_consumed(sent, timeout=120)
    ns.wait_scored(timeout=60)
    stats = ns.stats()
    assert ns.consumed() == sent
    assert stats["duplicate"] == ref.counts["duplicate"]
    assert stats["late"] == ref.counts["late"]
    assert stats["late_outside"] == ref.counts["late_outside"]
    assert len(ns.user_hashes()) == len(ref.users)
    assert ns.api_url is not None
    for uid in ref.users:
        code, body = http_json(f"{ns.api_url}/v1/users/{urllib.parse.quote(uid)}")
        assert code == 200, (uid, body)
        now = parse_time(body["as_of"])
        newest = ref.users[uid].newest
        assert now == newest or (now > newest and now % DAY == 0), (uid, body["as_of"])
        assert not mismatches(body["features"], ref.features(uid, now)), uid


def test_flushall_mid_stream_is_detected_and_rebuilt(log, namespace, own_redis) -> None:  # type: ignore[no-untyped-def]
    path, ref, sent = log
    port = _with_metrics(namespace)
    namespace.start_worker()
    namespace.start_api()
    sender = _replay_in_background(namespace, path)
    wait_until(lambda: namespace.consumed() > sent // 3, 60, "a third consumed")
    redis.Redis.from_url(own_redis[0].url).flushall()
    wiped = time.time()
    sender.join()
    _assert_every_user_exact(namespace, ref, sent)
    text = namespace.logs[0].read_text(errors="replace")
    assert LOST in text and "rebuilding from Kafka, replaying" in text, text[-3000:]
    assert re.search(r"redis state rebuilt: \d+ records replayed", text)
    assert _metric(port, "churn_state_rebuilds_total") == 1
    assert _metric(port, "churn_state_replayed_records_total") > 0
    code, status = http_json(namespace.api_url + "/v1/status")  # type: ignore[operator]
    assert code == 200 and status["state_rebuilds"] == 1
    print(f"\nFLUSHALL mid-stream: {_timings(text, wiped)}")


def test_redis_restarted_empty_mid_replay_is_rebuilt(log, namespace, own_redis) -> None:  # type: ignore[no-untyped-def]
    """The reported defect: Redis without persistence SIGKILLed mid-replay and started
    again empty on its port. The worker must not carry on from its committed offsets."""
    path, ref, sent = log
    worker = namespace.start_worker()
    namespace.start_api()
    sender = _replay_in_background(namespace, path)
    wait_until(lambda: namespace.consumed() > sent // 3, 60, "a third consumed")
    old = own_redis[0]
    assert old.proc is not None
    old.proc.send_signal(signal.SIGKILL)
    old.proc.wait()
    killed = time.time()
    own_redis.append(RedisServer(old.port).start())  # same port, no data
    sender.join()
    _assert_every_user_exact(namespace, ref, sent)
    assert worker.poll() is None
    text = namespace.logs[0].read_text(errors="replace")
    assert LOST in text, text[-3000:]
    print(f"\nRedis SIGKILLed, restarted empty: {_timings(text, killed)}")


def test_state_wiped_while_worker_down_is_rebuilt_at_assignment(log, namespace, own_redis) -> None:  # type: ignore[no-untyped-def]
    path, ref, sent = log
    namespace.extra_env["CHURN_LOG_LEVEL"] = "info"
    worker = namespace.start_worker()
    namespace.start_api()
    replay(path, namespace.settings(), progress=False)
    namespace.wait_consumed(sent, timeout=120)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    redis.Redis.from_url(own_redis[0].url).flushall()
    started = time.time()
    namespace.start_worker()
    _assert_every_user_exact(namespace, ref, sent)
    text = namespace.logs[-1].read_text(errors="replace")
    assert BEHIND in text and "rebuilding from Kafka" in text, text[-3000:]
    print(f"\nworker started on a wiped Redis: {_timings(text, started)} (from the worker's "
          "start: includes start-up and the group join)")


def test_redis_back_from_an_older_snapshot_is_caught_up(log, namespace) -> None:  # type: ignore[no-untyped-def]
    """Redis restarts from a snapshot older than what the worker applied (the loss
    window of `appendfsync everysec`, or a restored backup): the epoch is there but the
    applied offsets went back. The worker notices on reconnect and replays the gap."""
    path, ref, sent = log
    server = RedisServer().start()
    try:
        namespace.extra_env["CHURN_REDIS_URL"] = server.url
        worker = namespace.start_worker()
        namespace.start_api()
        sender = _replay_in_background(namespace, path)
        wait_until(lambda: namespace.consumed() > sent // 4, 60, "a quarter consumed")
        r = redis.Redis.from_url(server.url)
        r.save()  # a consistent point-in-time snapshot (dump.rdb)
        at_snapshot = namespace.consumed()
        wait_until(lambda: namespace.consumed() > at_snapshot + sent // 4, 60, "more consumed")
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        restarted = time.time()
        server = RedisServer(server.port, server.workdir).start()  # loads dump.rdb
        sender.join()
        _assert_every_user_exact(namespace, ref, sent)
        assert worker.poll() is None
        text = namespace.logs[0].read_text(errors="replace")
        assert "redis state is behind what this worker applied" in text, text[-3000:]
        assert LOST not in text  # the same state, only older: no wipe, no new epoch
        print(f"\nRedis back from an older snapshot: {_timings(text, restarted)}")
    finally:
        server.stop()
