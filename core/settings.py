"""The one configuration object. Every process reads it; env prefix ``CHURN_``.

Precedence: explicit environment variables, then the services file written by
``churnstream up`` (``.churnstream/services.env`` in the working directory, or
``$CHURN_ENV_FILE``), then the defaults below. So ``worker``/``api``/``replay``
find the embedded services by default, and pointing ``CHURN_KAFKA_BOOTSTRAP`` /
``CHURN_REDIS_URL`` at external servers overrides them unchanged.

>>> Settings(kafka_bootstrap="k:9092").events_topic
'events'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.playbook import Playbook, PlaybookError
from core.playbook import parse as parse_playbook
from core.tiers import AlertGate, TierPolicy

DEFAULT_PLAYBOOK = Path(__file__).with_name("playbook.toml")

DEFAULT_ENV_FILE = ".churnstream/services.env"
ENV_PREFIX = "CHURN_"

# CHURN_* variables read outside Settings: the services file, and the binaries of the
# embedded services (services/redis_server.py, services/broker.py). Known, so not reported as typos.
EXTRA_ENV = {
    "CHURN_ENV_FILE": "the services file (default .churnstream/services.env)",
    "CHURN_REDIS_SERVER": "redis-server binary for the embedded Redis",
    "CHURN_TANSU_BIN": "Tansu binary for the embedded broker",
}
# old name -> documented name; still read, with a warning at start-up
DEPRECATED_ENV = {"CHURN_CHURN_HORIZON_DAYS": "CHURN_HORIZON_DAYS"}
# removed name -> why, and what to set instead; start-up refuses them with that line
REMOVED_ENV = {
    "CHURN_VALUE_FIT_SECONDS": "the customer-value fit runs in event time now, not every N "
                               "wall-clock seconds; set CHURN_VALUE_FIT_EVERY_DAYS (0 = off)",
}


def _csv(value: str) -> list[str]:
    """Comma-separated environment values."""
    return [v.strip() for v in value.split(",") if v.strip()]


class Settings(BaseSettings):
    # extra="ignore": unknown CHURN_* names are reported by cli.preflight (with the
    # closest valid name) before any command starts; validate_by_name keeps
    # Settings(churn_horizon_days=...) working next to the env alias
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore",
                                      validate_by_name=True, validate_by_alias=True)

    # services
    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"  # redis+cluster://node: a Redis Cluster
    redis_prefix: str = "churn"
    state_dir: Path = Path(".churnstream")
    # start-up waits: every command gives up on an unreachable Kafka or Redis after this
    connect_timeout: float = Field(3.0, gt=0, le=600)

    # topics and consumer group
    events_topic: str = "events"
    dlq_topic: str = "events.dlq"
    partitions: int = Field(4, ge=1)
    app_id: str = "churnstream"
    kafka_session_timeout: float = Field(10.0, gt=0)
    kafka_heartbeat_interval: float = Field(1.0, gt=0)

    # stream worker
    batch_size: int = Field(8000, ge=1)
    batch_within: float = Field(0.1, gt=0)
    # lanes of partitions and chunks of users run at once (stream/worker/lanes.py)
    batch_lanes: int = Field(2, ge=1, le=16)
    batch_chunks: int = Field(2, ge=1, le=64)
    event_types: Annotated[list[str], NoDecode] = ["view", "cart", "remove_from_cart",
                                                   "purchase"]
    # H: env CHURN_HORIZON_DAYS (docs/design.md section 5); validation_alias replaces the
    # prefixed name, so the deprecated CHURN_CHURN_HORIZON_DAYS is listed explicitly
    churn_horizon_days: int = Field(30, ge=1, validation_alias=AliasChoices(
        "CHURN_HORIZON_DAYS", "CHURN_CHURN_HORIZON_DAYS"))
    max_future_seconds: float = 86_400.0  # later: event_time:future (< 0: no bound)
    # a record more than this ahead of its partition's clock moves it only once events of
    # clock_confirm_users distinct users within this span confirm the jump (core.clock)
    clock_max_step_hours: float = Field(24.0, gt=0)
    clock_confirm_users: int = Field(2, ge=1)
    clock: Literal["event", "wall"] = "event"  # time without traffic: core.time_policy
    idle_partition_seconds: float = Field(60.0, ge=0)
    wall_clock_grace_seconds: float = Field(300.0, ge=0)
    shutdown_timeout: float = Field(8.0, gt=0)  # a longer stop (SIGTERM, crash) exits anyway

    # model and learner
    training_topic: str = "training.examples"
    model_pipeline: str = "logreg"  # registry name (core.model.REGISTRY) or module:factory
    model_lr: float = Field(0.005, gt=0)
    min_labels: int = Field(1000, ge=0)
    # compare: the model speaks once it also ranks as well as the rule; count: min_labels
    model_handoff: Literal["compare", "count"] = "compare"
    # the learner also feeds the model the BG/NBD inputs of the snapshots (customer or
    # not, P(alive), log1p E[purchase days in H]); workers follow the loaded model
    model_value_inputs: bool = False
    metrics_window: int = Field(10_000, ge=10)
    # online model selection (core.champion): every champion_every examples the best
    # candidate by champion_metric over the window speaks, if it beats the champion by
    # more than champion_margin; the batch challenger retrains every batch_every_days
    champion_metric: Literal["rocauc", "pr_auc", "lift_at_10"] = "rocauc"
    champion_margin: float = Field(0.002, ge=0)
    champion_every: int = Field(1000, ge=1)
    champion_window: int = Field(2000, ge=50)  # the newest examples a decision looks at
    champion_batch: bool = True
    batch_every_days: int = Field(7, ge=1)
    learner_checkpoint_every: int = Field(5000, ge=1)
    learner_checkpoint_seconds: float = Field(5.0, gt=0)

    model_poll_seconds: float = Field(2.0, gt=0)  # workers hot-reload new versions

    # labels: daily anchors snapshot this share of active users (deterministic per user/day),
    # none in a partition's first label_warmup_days (a fresh log's windows are truncated)
    label_sample_rate: float = Field(1 / 30, ge=0, le=1)
    label_warmup_days: int = Field(30, ge=0)

    # customer value (BG/NBD + Gamma-Gamma), in event time (core/value_schedule.py): the
    # anchor of every value_fit_every_days-th day takes every customer's summary, the
    # learner fits on them, the fit serves from value_fit_lag_days later (0 = no scheduled
    # fits, only `churnstream fit-value`). A worker that reaches the serving day before the
    # fit waits up to value_fit_wait_seconds for it; the learner fits without a partition
    # that has not reached the fit day after value_fit_partial_seconds.
    # CLV over value_clv_days, discounted per 30 days
    value_fit_every_days: int = Field(7, ge=0)
    value_fit_lag_days: int = Field(7, ge=1)
    value_fit_wait_seconds: float = Field(60.0, ge=0)
    value_fit_partial_seconds: float = Field(300.0, gt=0)
    value_min_customers: int = Field(100, ge=10)
    value_clv_days: int = Field(365, ge=30)
    value_discount: float = Field(0.01, ge=0, lt=1)
    rfm_frequency_days: int = Field(365, ge=0)  # purchase days counted for RFM F; 0 = ever

    # sweeper: rescore silent users at each anchor, churn users silent > H days
    sweep_interval_seconds: float = Field(1.0, gt=0)
    sweep_chunk: int = Field(1000, ge=1)
    retention_days: int = Field(180, ge=0)  # delete churned users silent this long; 0 = never

    # tiers: cumulative shares of the ranking (critical, high, elevated), or with
    # tier_mode=absolute descending risk thresholds (tier_abs_cuts)
    tier_cuts: Annotated[tuple[float, float, float], NoDecode] = (0.05, 0.15, 0.30)
    tier_mode: str = Field("percentile", pattern="^(percentile|absolute)$")
    tier_abs_cuts: Annotated[tuple[float, float, float], NoDecode] = (0.8, 0.6, 0.4)
    tier_margin: float = Field(0.01, ge=0)  # hysteresis, in rank share (or probability)
    alerts_topic: str = "risk.alerts"
    alerts_per_day: int = Field(3, ge=1)  # per user per UTC day (event time)
    tier_min_dwell_hours: float = Field(0.0, ge=0)

    # api
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)
    # API keys (comma-separated): when set, POST /v1/events needs one in X-API-Key, and
    # so do the read endpoints with api_read_auth
    api_keys: Annotated[list[str], NoDecode] = []
    api_read_auth: bool = False
    api_max_events: int = Field(1000, ge=1)  # per POST /v1/events
    api_max_body_bytes: int = Field(1_048_576, ge=1024)
    api_produce_timeout: float = Field(10.0, gt=0)  # seconds to wait for Kafka's ack
    cors_origins: Annotated[list[str], NoDecode] = []  # off unless set
    # the console's retention playbook (TOML, core/playbook.py); empty: the shipped one
    playbook_file: str = ""

    # Prometheus /metrics of the worker and the learner (0: off); the API serves its own
    metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(9101, ge=0, le=65535)
    learner_metrics_port: int = Field(9102, ge=0, le=65535)

    log_level: str = "warn"

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or "/" in host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        url = urlsplit(value)
        try:
            port = url.port
        except ValueError:
            port = -1
        if url.scheme not in ("redis", "rediss", "unix", "redis+cluster") or port == -1 or (
                url.scheme != "unix" and not url.hostname) or (url.scheme == "unix"
                                                                 and not url.path):
            raise ValueError(f"expected redis://host:port/db or redis+cluster://, got {value!r}")
        return value

    @field_validator("event_types", "api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_types(cls, value: object) -> object:
        return _csv(value) if isinstance(value, str) else value

    @field_validator("tier_cuts", "tier_abs_cuts", mode="before")
    @classmethod
    def _split_cuts(cls, value: object) -> object:
        return tuple(float(v) for v in _csv(value)) if isinstance(value, str) else value

    @field_validator("tier_cuts")
    @classmethod
    def _check_cuts(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if not 0 < value[0] < value[1] < value[2] < 1:
            raise ValueError("tier cuts must be increasing shares in (0, 1)")
        return value

    @field_validator("tier_abs_cuts")
    @classmethod
    def _check_abs_cuts(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if not 1 > value[0] > value[1] > value[2] > 0:
            raise ValueError("absolute tier cuts must be decreasing probabilities in (0, 1)")
        return value

    @field_validator("retention_days")
    @classmethod
    def _check_retention(cls, value: int, info: Any) -> int:
        horizon = info.data.get("churn_horizon_days", 30)
        if value and value < 2 * horizon:
            raise ValueError("must be 0 (never) or at least 2 x CHURN_HORIZON_DAYS")
        return value

    def tier_policy(self) -> TierPolicy:
        if self.tier_mode == "absolute":
            return TierPolicy(cuts=self.tier_abs_cuts, margin=self.tier_margin, absolute=True)
        return TierPolicy(cuts=self.tier_cuts, margin=self.tier_margin)

    def alert_gate(self) -> AlertGate:
        return AlertGate(per_day=self.alerts_per_day,
                         min_dwell_ms=int(self.tier_min_dwell_hours * 3_600_000))

    def allowed_types(self) -> frozenset[str]:
        return frozenset(self.event_types)

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Every environment name a field is read from -> the field name."""
        names: dict[str, str] = {}
        for field_name, info in cls.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, AliasChoices):
                names.update((str(a), field_name) for a in alias.choices)
            elif isinstance(alias, str):
                names[alias] = field_name
            else:
                names[ENV_PREFIX + field_name.upper()] = field_name
        return names

    @classmethod
    def env_name(cls, field_name: str) -> str:
        """The documented environment name of a field."""
        return next(n for n, f in cls.env_names().items()
                    if f == field_name and n not in DEPRECATED_ENV)

    def playbook(self) -> Playbook:
        """The playbook of ``CHURN_PLAYBOOK_FILE`` (else ``core/playbook.toml``), validated
        (:class:`core.playbook.PlaybookError` lists every problem)."""
        path = Path(self.playbook_file) if self.playbook_file else DEFAULT_PLAYBOOK
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PlaybookError(f"{path}: cannot be read ({exc})") from None
        return parse_playbook(text, str(path))

    @staticmethod
    def env_file_path() -> str:
        """Where the services file of ``churnstream up`` is (``CHURN_ENV_FILE``)."""
        return os.environ.get("CHURN_ENV_FILE", DEFAULT_ENV_FILE)

    @staticmethod
    def env_file() -> str | None:
        """The services file Settings.load reads, if it exists."""
        env_file = Settings.env_file_path()
        return env_file if Path(env_file).is_file() else None

    @staticmethod
    def service_binary(name: str) -> str | None:
        """An explicit binary of an embedded service (``CHURN_TANSU_BIN``,
        ``CHURN_REDIS_SERVER``), read when the service starts, before any Settings."""
        if name not in EXTRA_ENV:
            raise KeyError(name)
        return os.environ.get(name) or None

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Settings from the environment and the services file of ``churnstream up``."""
        return cls(_env_file=cls.env_file(), **overrides)  # type: ignore[call-arg]

