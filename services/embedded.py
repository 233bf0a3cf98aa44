"""Embedded services for ``churnstream up``/``demo`` and the test fixtures: Tansu + Redis."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from core.settings import Settings
from services.broker import TansuBroker
from services.redis_server import RedisServer


class EmbeddedServices:
    """A real Kafka-protocol broker and a real Redis on 127.0.0.1, as child processes."""

    def __init__(self, kafka_port: int = 0, redis_port: int = 0,
                 redis_dir: str | None = None, durable: bool = False) -> None:
        """``durable``: Redis keeps an append-only file (fsync on every write) in
        ``redis_dir``, so :meth:`supervise` restarts it with its data."""
        self.broker = TansuBroker(kafka_port)
        self.redis = RedisServer(redis_port, redis_dir, durable=durable)
        self.redis_restarts = 0

    def start(self) -> EmbeddedServices:
        self.redis.start()
        try:
            self.broker.start()
        except BaseException:
            self.redis.stop()
            raise
        return self

    def stop(self) -> None:
        self.broker.stop()
        self.redis.stop()

    def supervise(self, say: Callable[[str], None] = print) -> int | None:
        """One check: a dead Redis is restarted on its port (with its append-only file,
        if durable); a dead broker cannot be (memory storage: its topics are gone), so
        its exit code is returned and the caller stops."""
        broker = self.broker.proc
        if broker is not None and broker.poll() is not None:
            say(f"kafka broker exited with code {broker.returncode}: its topics and offsets "
                "are gone (memory storage); stopping")
            return broker.returncode or 1
        proc = self.redis.proc
        if proc is not None and proc.poll() is not None:
            r = self.redis
            say(f"redis exited with code {proc.returncode}; restarting on port {r.port}"
                + (f" from its append-only file in {r.workdir}" if r.durable else " (empty)"))
            started = time.monotonic()
            self.redis = RedisServer(r.port, r.workdir, durable=r.durable)
            self.redis.start(timeout=120)
            self.redis_restarts += 1
            say(f"redis is back on port {r.port} after {time.monotonic() - started:.2f}s")
        return None

    def __enter__(self) -> EmbeddedServices:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def env(self) -> dict[str, str]:
        return {"CHURN_KAFKA_BOOTSTRAP": self.broker.bootstrap, "CHURN_REDIS_URL": self.redis.url}

    def settings(self, **overrides: object) -> Settings:
        return Settings(kafka_bootstrap=self.broker.bootstrap, redis_url=self.redis.url,
                        **overrides)  # type: ignore[arg-type]

    def write_env_file(self, path: str | None = None) -> Path:
        """Where worker/api/replay pick the services up by default (see Settings.load)."""
        target = Path(path or Settings.env_file_path())
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))
        return target
