"""The retention playbook: persona (RFM segment, ``core.segments``) x risk tier -> the
recommended action and an optional offer code. A TOML file (``CHURN_PLAYBOOK_FILE``; the
shipped default is ``core/playbook.toml``) with one table per segment and one entry per
tier; ``"*"`` matches any segment or tier. Validated in full when the API starts: every
problem is listed, with where it is.

>>> pb = parse('["*"]\\n"*" = { action = "Keep in the newsletter" }\\n'
...            '[at_risk]\\ncritical = { action = "Call them", offer = "WINBACK20" }\\n')
>>> pb.action("at_risk", "critical")
Action(text='Call them', offer='WINBACK20')
>>> pb.action("at_risk", "low").text, pb.action("champions", "critical").text
('Keep in the newsletter', 'Keep in the newsletter')
>>> try:
...     parse('[at_risk]\\ncriticl = { action = "x" }')
... except PlaybookError as exc:
...     print(str(exc).replace("; ", "\\n"))
playbook: [at_risk] criticl: unknown tier (tiers: critical, high, elevated, low, churned, *)
["*"] "*": missing: the default action for any segment and tier
"""

from __future__ import annotations

import re
import tomllib
from typing import NamedTuple

from core.segments import SEGMENTS
from core.tiers import ALL_TIERS

ANY = "*"
OFFER = re.compile(r"[A-Za-z0-9_-]{1,32}")
MAX_TEXT = 300


class PlaybookError(ValueError):
    pass


class Action(NamedTuple):
    text: str
    offer: str | None = None


class Playbook:
    def __init__(self, rules: dict[tuple[str, str], Action]) -> None:
        self.rules = rules

    def action(self, segment: str | None, tier: str | None) -> Action:
        """The most specific rule: (segment, tier), (segment, *), (*, tier), (*, *)."""
        s, t = segment or ANY, tier or ANY
        for key in ((s, t), (s, ANY), (ANY, t), (ANY, ANY)):
            if key in self.rules:
                return self.rules[key]
        raise AssertionError("a parsed playbook has a default")  # parse() requires it


def parse(text: str, source: str = "playbook") -> Playbook:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlaybookError(f"{source}: not TOML: {exc}") from None
    problems: list[str] = []
    rules: dict[tuple[str, str], Action] = {}
    for segment, entries in data.items():
        if segment not in (*SEGMENTS, ANY):
            problems.append(f"[{segment}]: unknown segment (segments: "
                            f"{', '.join((*SEGMENTS, ANY))})")
            continue
        if not isinstance(entries, dict):
            problems.append(f"[{segment}]: a table of tiers, not {type(entries).__name__}")
            continue
        for tier, entry in entries.items():
            where = f"[{segment}] {tier}"
            if tier not in (*ALL_TIERS, ANY):
                problems.append(f"{where}: unknown tier (tiers: {', '.join((*ALL_TIERS, ANY))})")
            elif not isinstance(entry, dict) or set(entry) - {"action", "offer"}:
                problems.append(f"{where}: {{ action = \"...\", offer = \"...\" }} expected")
            elif not isinstance(entry.get("action"), str) or not entry["action"].strip() \
                    or len(entry["action"]) > MAX_TEXT:
                problems.append(f"{where}: action must be text of 1-{MAX_TEXT} characters")
            elif "offer" in entry and not (isinstance(entry["offer"], str)
                                           and OFFER.fullmatch(entry["offer"])):
                problems.append(f"{where}: offer must be 1-32 letters, digits, - or _")
            else:
                rules[(segment, tier)] = Action(entry["action"].strip(), entry.get("offer"))
    if (ANY, ANY) not in rules:
        problems.append('["*"] "*": missing: the default action for any segment and tier')
    if problems:
        raise PlaybookError(f"{source}: " + "; ".join(problems))
    return Playbook(rules)
