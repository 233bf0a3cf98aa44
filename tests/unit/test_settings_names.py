"""Setting names: every documented CHURN_* name is real, unknown names are reported."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

from cli import preflight
from cli.main import build_parser
from core.settings import EXTRA_ENV, REMOVED_ENV, Settings

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"(?<![A-Za-z0-9_])CHURN_[A-Z][A-Z0-9_]*")
TYPOS = {"CHURN_HORIZN_DAYS", "CHURN_REDIS_ULR"}  # deliberate, in examples and tests


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("CHURN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CHURN_ENV_FILE", str(tmp_path / "absent.env"))


def test_horizon_days_is_read_from_its_documented_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.load().churn_horizon_days == 30
    monkeypatch.setenv("CHURN_HORIZON_DAYS", "90")
    assert Settings.load().churn_horizon_days == 90
    assert preflight.load_settings()[0].churn_horizon_days == 90
    assert Settings(churn_horizon_days=5).churn_horizon_days == 5  # the field name still works
    assert Settings.env_name("churn_horizon_days") == "CHURN_HORIZON_DAYS"


def test_deprecated_horizon_name_works_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_CHURN_HORIZON_DAYS", "7")
    settings, warnings = preflight.load_settings()
    assert settings.churn_horizon_days == 7
    assert warnings == ["CHURN_CHURN_HORIZON_DAYS is deprecated; use CHURN_HORIZON_DAYS"]
    monkeypatch.setenv("CHURN_HORIZON_DAYS", "9")
    with pytest.raises(preflight.StartupError, match="disagree") as err:
        preflight.load_settings()
    assert err.value.code == 2


def test_unknown_names_are_reported_with_the_closest_valid_name(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHURN_HORIZN_DAYS", "5")
    with pytest.raises(preflight.StartupError) as err:
        preflight.load_settings()
    assert err.value.line == ("unknown setting CHURN_HORIZN_DAYS "
                              "(did you mean CHURN_HORIZON_DAYS?)")
    assert err.value.code == 2
    monkeypatch.delenv("CHURN_HORIZN_DAYS")
    env_file = tmp_path / "svc.env"
    env_file.write_text("CHURN_REDIS_URL=redis://127.0.0.1:6379/0\nCHURN_REDIS_ULR=x\n")
    monkeypatch.setenv("CHURN_ENV_FILE", str(env_file))
    with pytest.raises(preflight.StartupError) as err:
        preflight.load_settings()
    assert err.value.line == (f"unknown setting CHURN_REDIS_ULR in {env_file} "
                              "(did you mean CHURN_REDIS_URL?)")
    for name in EXTRA_ENV:  # read outside Settings: known
        monkeypatch.setenv(name, str(env_file))
    monkeypatch.setenv("CHURN_ENV_FILE", str(tmp_path / "absent.env"))
    preflight.load_settings()


def test_a_removed_name_is_refused_with_what_replaces_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_VALUE_FIT_SECONDS", "600")
    with pytest.raises(preflight.StartupError) as err:
        preflight.load_settings()
    assert err.value.line == (
        "CHURN_VALUE_FIT_SECONDS was removed: the customer-value fit runs in event time now, "
        "not every N wall-clock seconds; set CHURN_VALUE_FIT_EVERY_DAYS (0 = off)")
    assert err.value.code == 2


def test_invalid_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURN_PARTITIONS", "0")
    monkeypatch.setenv("CHURN_BATCH_SIZE", "abc")
    monkeypatch.setenv("CHURN_HORIZON_DAYS", "0")
    monkeypatch.setenv("CHURN_CLOCK", "sometimes")
    monkeypatch.setenv("CHURN_IDLE_PARTITION_SECONDS", "-1")
    monkeypatch.setenv("CHURN_BATCH_LANES", "0")
    monkeypatch.setenv("CHURN_BATCH_CHUNKS", "65")
    with pytest.raises(preflight.StartupError) as err:
        preflight.load_settings()
    line = err.value.line
    assert line.startswith("invalid settings ") and "\n" not in line
    for part in ("CHURN_PARTITIONS=0: Input should be greater than or equal to 1",
                 "CHURN_BATCH_SIZE=abc: Input should be a valid integer",
                 "CHURN_HORIZON_DAYS=0: Input should be greater than or equal to 1",
                 "CHURN_CLOCK=sometimes: Input should be 'event' or 'wall'",
                 "CHURN_IDLE_PARTITION_SECONDS=-1: Input should be greater than or equal to 0",
                 "CHURN_BATCH_LANES=0: Input should be greater than or equal to 1",
                 "CHURN_BATCH_CHUNKS=65: Input should be less than or equal to 64"):
        assert part in line


@pytest.mark.parametrize("name,value", [
    ("CHURN_REDIS_URL", "notaurl"), ("CHURN_REDIS_URL", "redis://host:port/0"),
    ("CHURN_REDIS_URL", "http://host:6379/0"), ("CHURN_KAFKA_BOOTSTRAP", "kafka://k:9092"),
    ("CHURN_KAFKA_BOOTSTRAP", "k"), ("CHURN_KAFKA_BOOTSTRAP", "k:9092,k2:x"),
    ("CHURN_CONNECT_TIMEOUT", "0"), ("CHURN_API_PORT", "70000"),
])
def test_malformed_addresses_are_setting_errors(monkeypatch: pytest.MonkeyPatch, name: str,
                                                value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(preflight.StartupError) as err:
        preflight.load_settings()
    assert err.value.line.startswith(f"invalid setting {name}={value}: ")


@pytest.mark.parametrize("value", ["redis://r:6379/0", "rediss://:pw@r:6380/1",
                                   "unix:///tmp/redis.sock", "redis://127.0.0.1"])
def test_good_redis_urls(value: str) -> None:
    assert Settings(redis_url=value).redis_url == value


def _doc_texts() -> dict[str, str]:
    """Every place a setting name is documented: docs, deploy files, --help, code strings."""
    texts: dict[str, str] = {}
    design = ROOT.parent / "shared" / "DESIGN.md"
    paths = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "docker-compose.yml",
             ROOT / "Dockerfile", *sorted((ROOT / "deploy").rglob("*.y*ml")),
             *sorted((ROOT / "docs").rglob("*.md"))]
    if design.exists():
        paths.append(design)
    for path in paths:
        texts[str(path.relative_to(ROOT.parent))] = path.read_text()
    ap = build_parser()
    texts["churnstream --help"] = ap.format_help()
    for action in ap._subparsers._group_actions:  # type: ignore[union-attr]
        for name, sub in action.choices.items():  # type: ignore[union-attr]
            texts[f"churnstream {name} --help"] = sub.format_help()
    for folder in ("core", "state", "stream", "api", "offline", "services", "cli", "bench",
                   "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
            texts[str(path.relative_to(ROOT))] = "\n".join(
                t.string for t in tokens if t.type in (tokenize.STRING, tokenize.COMMENT))
    return texts


def test_every_documented_name_is_a_real_setting() -> None:
    known = set(Settings.env_names()) | set(EXTRA_ENV)
    seen: dict[str, list[str]] = {}
    for where, text in _doc_texts().items():
        for name in NAME.findall(text):
            seen.setdefault(name, []).append(where)
    assert "CHURN_HORIZON_DAYS" in seen and "CHURN_KAFKA_BOOTSTRAP" in seen
    unknown = {n: sorted(set(w)) for n, w in seen.items() if n not in known | TYPOS}
    # a removed name may stay where its removal is told: the refusal, its test, the log
    told = {"core/settings.py", f"{ROOT.name}/CHANGELOG.md", "tests/unit/test_settings_names.py"}
    unknown = {n: w for n, w in unknown.items() if not (n in REMOVED_ENV and set(w) <= told)}
    assert not unknown, f"documented but no setting: {unknown}"


def test_names_read_outside_settings_are_known() -> None:
    read = set()
    for folder in ("core", "state", "stream", "api", "offline", "services", "cli"):
        for path in (ROOT / folder).rglob("*.py"):
            read.update(re.findall(r"environ(?:\.get)?[\(\[]\"(CHURN_[A-Z0-9_]+)\"",
                                   path.read_text()))
    assert read, "the pattern finds os.environ reads"
    assert read <= set(EXTRA_ENV) | set(Settings.env_names()), read - set(EXTRA_ENV)
