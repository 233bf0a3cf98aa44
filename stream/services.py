"""Embedded services for ``churnstream up``/``demo`` and the test fixtures: Tansu + Redis."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from core.settings import DEFAULT_ENV_FILE, Settings
from state.server import RedisServer
from stream.broker import TansuBroker


class EmbeddedServices:
    """A real Kafka-protocol broker and a real Redis on 127.0.0.1, as child processes."""

    def __init__(self, kafka_port: int = 0, redis_port: int = 0) -> None:
        self.broker = TansuBroker(kafka_port)
        self.redis = RedisServer(redis_port)

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
        target = Path(path or os.environ.get("CHURN_ENV_FILE", DEFAULT_ENV_FILE))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))
        return target
