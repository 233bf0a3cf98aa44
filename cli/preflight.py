"""Start-up checks of every ``churnstream`` command: one line on stderr, not a traceback.

Before a command starts faust, uvicorn or a producer, :func:`run`

1. reports ``CHURN_*`` names that are no setting (in the environment or the
   services file), with the closest valid name; exit 2;
2. validates the settings (one line naming each bad variable and the problem); exit 2;
3. checks the services the command needs: Redis answers PING, Kafka answers an
   ApiVersions request, the API port is free; each wait bounded by
   ``CHURN_CONNECT_TIMEOUT`` (3 s); exit 1.

>>> closest("CHURN_HORIZN_DAYS")
'CHURN_HORIZON_DAYS'
>>> describe_errors([{"loc": ("partitions",), "msg": "Input should be greater than or "
...                   "equal to 1", "input": "0"}], {})
'CHURN_PARTITIONS=0: Input should be greater than or equal to 1'
"""

from __future__ import annotations

import difflib
import os
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from core.playbook import PlaybookError
from core.settings import DEPRECATED_ENV, ENV_PREFIX, EXTRA_ENV, REMOVED_ENV, Settings


class StartupError(SystemExit):
    """A one-line reason to stop; ``code`` 2 for configuration, 1 for services."""

    def __init__(self, line: str, code: int = 1) -> None:
        super().__init__(code)
        self.line = line

    def __str__(self) -> str:
        return self.line


def known_names() -> set[str]:
    return set(Settings.env_names()) | set(EXTRA_ENV)


def closest(name: str) -> str | None:
    valid = sorted(known_names() - set(DEPRECATED_ENV))
    match = difflib.get_close_matches(name.upper(), valid, n=1, cutoff=0.6)
    return match[0] if match else None


def _env_file_values(path: str | None) -> dict[str, str]:
    if path is None:
        return {}
    from dotenv import dotenv_values

    return {k: v or "" for k, v in dotenv_values(path).items()}


def check_names(environ: Mapping[str, str], file_values: Mapping[str, str],
                env_file: str | None) -> list[str]:
    """Raise on unknown ``CHURN_*`` names; return warnings for deprecated ones."""
    known = known_names()
    unknown: list[str] = []
    for source, names in (("", environ), (f" in {env_file}", file_values)):
        for name in sorted(names):
            upper = name.upper()
            if upper in REMOVED_ENV:
                raise StartupError(f"{name}{source} was removed: {REMOVED_ENV[upper]}", 2)
            if upper.startswith(ENV_PREFIX) and upper not in known:
                hint = closest(upper)
                unknown.append(f"{name}{source}" + (f" (did you mean {hint}?)" if hint else ""))
    if unknown:
        raise StartupError(f"unknown setting{'s' * (len(unknown) > 1)} {', '.join(unknown)}",
                           2)
    merged = {k.upper(): v for k, v in file_values.items()}
    merged.update((k.upper(), v) for k, v in environ.items())
    warnings = []
    for old, new in DEPRECATED_ENV.items():
        if old in merged:
            if new in merged and merged[new] != merged[old]:
                raise StartupError(f"{new}={merged[new]} and the deprecated {old}="
                                   f"{merged[old]} disagree; set only {new}", 2)
            warnings.append(f"{old} is deprecated; use {new}")
    return warnings


def describe_errors(errors: Iterable[Mapping[str, Any]], file_values: Mapping[str, str],
                    env_file: str | None = None) -> str:
    """pydantic errors as ``NAME=value: problem; ...`` with the environment names."""
    names = Settings.env_names()
    parts = []
    for err in errors:
        loc = str(err["loc"][0]) if err.get("loc") else ""
        field = names.get(loc.upper(), loc)
        env = loc.upper() if loc.upper() in names else Settings.env_name(field) if (
            field in Settings.model_fields) else loc
        value = err.get("input")
        shown = value if isinstance(value, str) else None
        where = f" (in {env_file})" if env_file and env in {
            k.upper() for k in file_values} and env not in os.environ else ""
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{env}={shown[:80]}{where}: {msg}" if shown is not None
                     else f"{env}: {msg}")
    return "; ".join(parts)


def load_settings(**overrides: Any) -> tuple[Settings, list[str]]:
    """Settings after the name check; (settings, warnings) or a :class:`StartupError`."""
    env_file = Settings.env_file()
    file_values = _env_file_values(env_file)
    warnings = check_names(os.environ, file_values, env_file)
    try:
        return Settings.load(**overrides), warnings
    except ValidationError as exc:
        what = "setting" if exc.error_count() == 1 else "settings"
        raise StartupError(f"invalid {what} " + describe_errors(
            exc.errors(), file_values, env_file), 2) from None


def _retry(what: str, timeout: float, attempt: Callable[[float], None]) -> None:
    """Call ``attempt(seconds left)`` until it returns or ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            attempt(max(0.05, deadline - time.monotonic()))
            return
        except _Fatal as exc:
            raise StartupError(f"{what}: {exc}") from None
        except (OSError, _Retry) as exc:
            if time.monotonic() + 0.25 >= deadline:
                reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                raise StartupError(f"{what} unreachable after {timeout:.1f} s ({reason})"
                                   ) from None
            time.sleep(0.25)


class _Retry(Exception):
    """Not there yet (timeout, connection reset, ...)."""


class _Fatal(Exception):
    """Answered, but wrongly: waiting will not help (bad password, not Redis, ...)."""


def check_redis(settings: Settings, tcp_only: bool = False) -> None:
    """PING Redis within ``connect_timeout``; ``tcp_only``: the URL must be redis://."""
    import redis
    from redis import exceptions as rex

    url = settings.redis_url
    cluster = url.startswith("redis+cluster://")
    if tcp_only and not (url.startswith("redis://") or cluster):
        raise StartupError(f"CHURN_REDIS_URL={url}: the hot path speaks plain TCP to Redis; "
                           "use a redis:// or redis+cluster:// URL (no rediss:// or unix "
                           "socket yet)", 2)
    node = url.replace("redis+cluster://", "redis://", 1)

    def ping(left: float) -> None:
        try:
            client = redis.Redis.from_url(node, protocol=2, socket_connect_timeout=left,
                                          socket_timeout=left, retry_on_timeout=False)
        except ValueError as exc:
            raise StartupError(f"CHURN_REDIS_URL={url}: {exc}", 2) from None
        try:
            client.ping()
            enabled = client.info("cluster").get("cluster_enabled") in (1, "1")
            if enabled and not cluster:
                raise _Fatal("a Redis Cluster node; name the cluster as "
                             "redis+cluster://host:port (any node) to use it")
            if cluster and not enabled:
                raise _Fatal("not a Redis Cluster node (redis+cluster:// names a cluster; "
                             "use redis:// for a single Redis)")
            if cluster:
                info = client.execute_command("CLUSTER", "INFO")
                text = info.decode() if isinstance(info, bytes) else str(info)
                if "cluster_state:ok" not in text:
                    raise _Retry("the cluster's state is not ok yet")
        except rex.BusyLoadingError:  # there, loading its data: the worker waits for it
            return
        except (rex.AuthenticationError, rex.ResponseError) as exc:
            raise _Fatal(str(exc)) from None
        except (rex.ConnectionError, rex.TimeoutError) as exc:
            cause = exc.__cause__ or exc.__context__
            raise _Retry(getattr(cause, "strerror", None) or _short(exc)) from None
        except rex.RedisError as exc:
            raise _Fatal(_short(exc)) from None
        finally:
            client.close()

    _retry(f"Redis at {url}", settings.connect_timeout, ping)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def kafka_api_versions(host: str, port: int, timeout: float) -> None:
    """One ApiVersions (v0) round trip: the peer is a Kafka-protocol broker."""
    client = b"churnstream-preflight"
    request = struct.pack(">hhih", 18, 0, 0x5EED, len(client)) + client
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(request)) + request)
        head = _recv(sock, 8)
    size, correlation = struct.unpack(">ii", head)
    if correlation != 0x5EED or not 6 <= size < 1 << 20:
        raise _Fatal("not a Kafka broker (unexpected reply to ApiVersions)")


def _recv(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except TimeoutError:
            raise _Retry("no reply to ApiVersions") from None
        if not chunk:
            raise _Retry("connection closed before a reply to ApiVersions")
        data += chunk
    return data


def check_kafka(settings: Settings) -> None:
    """Some bootstrap server answers ApiVersions within ``connect_timeout``."""
    servers = [s.strip().rpartition(":") for s in settings.kafka_bootstrap.split(",")]

    def any_server(left: float) -> None:
        errors: list[BaseException] = []
        for host, _, port in servers:
            try:
                kafka_api_versions(host.strip("[]"), int(port), left / len(servers))
                return
            except (OSError, _Retry) as exc:
                errors.append(exc)
        raise errors[0]

    _retry(f"Kafka at {settings.kafka_bootstrap}", settings.connect_timeout, any_server)


def check_listen(host: str, port: int) -> None:
    """The API can bind its address (else uvicorn logs a traceback-like error)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, addr = infos[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port} "
                           f"({exc.strerror or exc})") from None


def check_partitions(settings: Settings) -> None:
    """On a Redis Cluster a user's keys live in the slot of its default partition among
    ``CHURN_PARTITIONS``: the events topic must have that many (state/keys.py)."""
    from stream.topics import ensure_topics, partition_count

    ensure_topics(settings)
    n = partition_count(settings, settings.events_topic)
    if n is not None and n != settings.partitions:
        raise StartupError(f"topic {settings.events_topic} has {n} partitions but "
                           f"CHURN_PARTITIONS={settings.partitions}: on a Redis Cluster "
                           "they must be equal (state/keys.py)", 2)


def run(command: str, needs: Iterable[str] = (), **overrides: Any) -> Settings:
    """Settings for ``command`` once its services answer; else one line and exit."""
    try:
        settings, warnings = load_settings(**overrides)
        for line in warnings:
            print(f"churnstream {command}: warning: {line}", file=sys.stderr, flush=True)
        needed = set(needs)
        if "kafka" in needed:
            check_kafka(settings)
        if "redis" in needed or "redis-tcp" in needed:
            check_redis(settings, tcp_only="redis-tcp" in needed)
            if settings.redis_url.startswith("redis+cluster://"):
                if "kafka" in needed:
                    check_partitions(settings)
                if command == "fit-value":
                    raise StartupError("fit-value scans a single Redis; on a Redis Cluster "
                                       "the learner's scheduled fits make the value fits "
                                       "(CHURN_VALUE_FIT_EVERY_DAYS)", 2)
        if "listen" in needed:
            check_listen(settings.api_host, settings.api_port)
        if "playbook" in needed:
            try:
                settings.playbook()
            except PlaybookError as exc:
                raise StartupError(f"CHURN_PLAYBOOK_FILE: {exc}", 2) from None
    except StartupError as exc:
        print(f"churnstream {command}: {exc.line}", file=sys.stderr, flush=True)
        raise SystemExit(exc.code) from None
    return settings
