"""Outages under the API, on real services: a Redis that stops is 503 JSON on every
endpoint that needs it (the endpoints listed from the app's own routes), fast, in one
log line per request; a Kafka cut under ``POST /v1/events`` is 503 and nothing of that
body reaches the topic, even after Kafka comes back."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Mount

from api.main import create_app
from core.settings import Settings
from services.broker import find_tansu
from services.redis_server import RedisServer, free_port, wait_port
from tests.integration.conftest import Namespace, read_topic
from tests.integration.test_api_ops import call, ev

pytestmark = pytest.mark.integration
OPEN_WITHOUT_REDIS = {"/healthz": 200, "/metrics": 200, "/openapi.json": 200, "/docs": 200,
                      "/docs/oauth2-redirect": 200, "/redoc": 200,
                      "/v1/events": 202}  # writes go to Kafka only
NO_REDIS_PAGES = ("/console/login", "/console/logout", "/console/assets", "/console/users")
VARIANTS = {"/v1/top": ["?k=5", "?format=csv", "?sort=value&k=3", "?percent=10&k=2"],
            "/v1/users/{user_id}": ["?as_of=2030-01-01T00:00:00Z"]}


def routes_of(settings: Settings) -> list[tuple[str, set[str]]]:
    """(path template, methods) of every route the app serves, included routers too."""
    out = []
    for route in create_app(settings).routes:
        if isinstance(route, Mount):
            continue  # static files
        if hasattr(route, "effective_route_contexts"):  # FastAPI's included routers
            out += [(c.path, set(c.methods or ())) for c in route.effective_route_contexts()]
        else:
            out.append((route.path, set(getattr(route, "methods", None) or {"GET"})))
    # the console's sign-in, assets and search redirect never read Redis
    return [(p, m) for p, m in out if not (p.startswith(NO_REDIS_PAGES[:3])
                                            or p == NO_REDIS_PAGES[3])]


def requests_of(settings: Settings) -> list[tuple[str, str]]:
    """(method, URL path) of every route of the app, path parameters filled in."""
    out = []
    for path, methods in routes_of(settings):
        concrete = path.replace("{user_id}", "u1")
        for method in sorted(methods - {"HEAD"}):
            out += [(method, concrete + q) for q in ["", *VARIANTS.get(path, [])]]
    assert len(out) > 15 and ("POST", "/v1/events") in out
    return out


def test_redis_down_is_503_json_everywhere(namespace: Namespace, tmp_path: Path) -> None:
    redis = RedisServer(workdir=str(tmp_path)).start()
    ns = namespace
    ns.extra_env.update(CHURN_REDIS_URL=redis.url)
    api = ns.start_api()
    assert call(api + "/readyz")[0] == 200
    redis.stop()
    log = ns.logs[-1]
    before = log.read_bytes().count(b"\n")
    answered = 0
    for method, path in requests_of(ns.settings()):
        started = time.monotonic()
        code, body, headers = call(api + path, method, ev(0) if method == "POST" else None)
        took = time.monotonic() - started
        assert took < 3.0, (path, took)
        bare = path.split("?")[0].replace("/u1", "/{user_id}")
        if bare == "/readyz":
            ready = json.loads(body)
            assert code == 503 and ready["detail"]["error"] == "redis_unavailable", ready
            assert ready["checks"]["kafka"] == "ok"
            continue
        want = OPEN_WITHOUT_REDIS.get(bare, 503)
        assert code == want, (method, path, code, body[:200])
        if code == 503:
            answered += 1
            assert headers["content-type"].startswith("application/json"), path
            assert json.loads(body)["detail"]["error"] == "redis_unavailable", path
            assert headers.get("retry-after")
    assert answered >= 10
    time.sleep(0.5)
    text = log.read_text()
    assert "Traceback" not in text and "Exception in ASGI" not in text, text[-3000:]
    assert text.count("\n") - before <= answered, text.splitlines()[before:]


class Cuttable:
    """A TCP proxy on 127.0.0.1 that can drop every connection and refuse new ones."""

    def __init__(self, target: int) -> None:
        self.target, self.port = target, free_port()
        self.conns: list[socket.socket] = []
        self.server: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(16)
        self.server = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                a, _ = srv.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pipe, args=(x, y), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        assert self.server is not None
        with contextlib.suppress(OSError):  # wakes the accepting thread (close alone
            self.server.shutdown(socket.SHUT_RDWR)  # leaves the socket listening)
        self.server.close()
        for s in self.conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self.conns = []


@pytest.fixture
def cuttable_kafka(tmp_path: Path) -> Any:
    """A Tansu of its own, advertised at a proxy's port: every client goes through it."""
    port = free_port()
    proxy = Cuttable(port)
    proc = subprocess.Popen([find_tansu(), "broker", "--listener-url",
                             f"tcp://127.0.0.1:{port}", "--advertised-listener-url",
                             f"tcp://127.0.0.1:{proxy.port}", "--storage-engine",
                             "memory://tansu/"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 20, proc)
        yield proxy
    finally:
        proxy.cut()
        proc.terminate()
        proc.wait(10)


def test_kafka_cut_under_post_events(namespace: Namespace, cuttable_kafka: Cuttable) -> None:
    ns, proxy = namespace, cuttable_kafka
    bootstrap = f"127.0.0.1:{proxy.port}"
    ns.extra_env.update(CHURN_KAFKA_BOOTSTRAP=bootstrap, CHURN_API_PRODUCE_TIMEOUT="2")
    api = ns.start_api()
    topic = ns.env["CHURN_EVENTS_TOPIC"]
    assert call(api + "/v1/events", "POST", [ev(0), ev(1)])[0] == 202
    proxy.cut()
    started = time.monotonic()
    code, body, _ = call(api + "/v1/events", "POST", [ev(2), ev(3, "p2")])
    took = time.monotonic() - started
    detail = json.loads(body)["detail"]
    assert code == 503 and detail["error"] == "kafka_unavailable" and detail["accepted"] == 0
    assert took < 6.0, took
    code, body, _ = call(api + "/readyz")
    assert code == 503 and json.loads(body)["detail"]["error"] == "kafka_unavailable"
    proxy.restore()
    time.sleep(8)  # the refused body is not delivered late by a buffered retry
    assert call(api + "/v1/events", "POST", [ev(4)])[0] == 202
    sent = [json.loads(v)["event_id"] for v in read_topic(bootstrap, topic, 3, 10)]
    assert sorted(sent) == ["post-0", "post-1", "post-4"]


def test_huge_numbers_are_422_json(namespace: Namespace) -> None:
    api = namespace.start_api()
    for query in ("offset=18446744073709551616", "k=18446744073709551616",
                  "offset=1000000001", "k=10001", "percent=1e400", "percent=nan",
                  "min_value_quantile=1e400&sort=value"):
        code, body, headers = call(f"{api}/v1/top?{query}")
        assert code == 422, query
        assert headers["content-type"].startswith("application/json")
        assert json.loads(body)["detail"], query
    code, body, _ = call(f"{api}/v1/users/u1?as_of=18446744073709551616999")
    assert code in (404, 422)  # the user is looked up first
