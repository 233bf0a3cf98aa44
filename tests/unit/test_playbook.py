"""The retention playbook (core/playbook.py): the shipped default, the lookup order, and
every kind of bad file refused at start-up with where the problem is."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import preflight
from core.playbook import ANY, PlaybookError, parse
from core.segments import SEGMENTS
from core.settings import DEFAULT_PLAYBOOK, Settings
from core.tiers import ALL_TIERS


def test_the_default_playbook_has_an_action_for_every_segment_and_tier() -> None:
    pb = Settings().playbook()
    for segment in SEGMENTS:
        for tier in (*ALL_TIERS, None):
            a = pb.action(segment, tier)
            assert a.text and (a.offer is None or a.offer.isascii())
    assert pb.action("cant_lose", "critical").offer == "WINBACK25"
    assert pb.action("champions", "low").text.startswith("Thank them")  # segment, "*"
    assert pb.action("hibernating", "critical").text.startswith("Low-cost")  # segment wins
    assert pb.action(None, "critical").offer == "STAY15"  # no segment yet: "*", tier


def test_the_most_specific_rule_wins() -> None:
    pb = parse('["*"]\n"*" = {action = "a"}\nhigh = {action = "b"}\n'
               '[loyal]\n"*" = {action = "c"}\nhigh = {action = "d"}\n')
    assert [pb.action(s, t).text for s, t in [("loyal", "high"), ("loyal", "low"),
                                               ("new", "high"), ("new", "low")]] == list("dcba")
    assert (ANY, ANY) in pb.rules


@pytest.mark.parametrize(("text", "problem"), [
    ("not = [toml", "not TOML"),
    ('["*"]\n"*" = {action = "a"}\n[vip]\nhigh = {action = "b"}', "[vip]: unknown segment"),
    ('["*"]\n"*" = {action = "a"}\n[loyal]\nhigher = {action = "b"}', "higher: unknown tier"),
    ('["*"]\n"*" = {action = ""}', "action must be text"),
    ('["*"]\n"*" = {action = "a", offer = "has space"}', "offer must be"),
    ('["*"]\n"*" = {action = "a", discount = 5}', "expected"),
    ('["*"]\n"*" = "just text"', "expected"),
    ('loyal = 3\n["*"]\n"*" = {action = "a"}', "[loyal]: a table of tiers"),
    ('[loyal]\nhigh = {action = "a"}', "missing: the default action"),
    ('["*"]\n"*" = {action = "' + "x" * 301 + '"}', "1-300 characters"),
])
def test_bad_playbooks_are_refused_with_where(text: str, problem: str) -> None:
    with pytest.raises(PlaybookError) as exc:
        parse(text, "my.toml")
    assert str(exc.value).startswith("my.toml: ") and problem in str(exc.value)


def test_a_bad_file_stops_the_api_at_start_with_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "playbook.toml"
    bad.write_text('[loyal]\nhigh = {action = "a"}\n')
    for path, want in ((bad, "missing: the default action"),
                       (tmp_path / "absent.toml", "cannot be read"),
                       (DEFAULT_PLAYBOOK, None)):
        monkeypatch.setenv("CHURN_PLAYBOOK_FILE", str(path))
        if want is None:
            assert preflight.run("api", ("playbook",)).playbook_file == str(path)
            continue
        with pytest.raises(SystemExit) as exc:
            preflight.run("api", ("playbook",))
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("churnstream api: CHURN_PLAYBOOK_FILE: ") and want in err
        assert "\n" not in err
