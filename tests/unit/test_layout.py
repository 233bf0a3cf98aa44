"""The layout of docs/architecture.md, checked: every room opens with a docstring that
says what lives there and what it may import, and the imports obey it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# room -> the rooms it may import (itself always)
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "state": {"core"},
    "services": {"core", "state"},
    "stream": {"core"},  # the shared modules: topics, lifecycle
    "stream.jobs": {"core", "state"},
    "stream.worker": {"core", "state", "stream"},
    "stream.learner": {"core", "state", "stream", "stream.jobs"},
    "offline": {"core", "stream", "stream.learner"},
    "api": {"core", "state"},
    "cli": {"core", "state", "services", "stream", "stream.jobs", "stream.worker",
            "stream.learner", "offline", "api"},
}
TOP = {r.split(".")[0] for r in ALLOWED}


def room_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "stream" and len(parts) > 1 and f"stream.{parts[1]}" in ALLOWED:
        return f"stream.{parts[1]}"
    return parts[0]


def imports() -> list[tuple[str, str, str]]:
    """(file, its room, the imported module) for every import of this repository's code,
    at any depth (imports inside functions count too)."""
    out = []
    for top in sorted(TOP):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT)
            module = ".".join(rel.with_suffix("").parts)
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                out += [(str(rel), room_of(module), n) for n in names if n.split(".")[0] in TOP]
    return out


def test_every_import_goes_where_the_layout_allows() -> None:
    found = imports()
    assert len(found) > 250  # the walk sees the code
    wrong = [f"{f}: {room} imports {name}" for f, room, name in found
             if room_of(name) != room and room_of(name) not in ALLOWED[room]]
    assert not wrong, "\n".join(wrong)


def test_every_room_opens_with_what_lives_there_and_what_it_may_import() -> None:
    for room in ALLOWED:
        init = ROOT / room.replace(".", "/") / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 80, room
        assert "Imports:" in doc or "may import" in doc, room


def test_no_room_is_left_out_of_the_layout() -> None:
    """A new package must be placed in ALLOWED (and in docs/architecture.md)."""
    for top in TOP:
        for init in (ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT).parts
            # a process room under stream/ is a room of its own; other sub-packages
            # (api/routes) belong to their top-level room
            assert ".".join(parts[:2] if parts[0] == "stream" else parts[:1]) in ALLOWED, parts
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages - {"tests", "bench"} == TOP
    text = (ROOT / "docs" / "architecture.md").read_text()
    for room in ALLOWED:
        assert f"`{room.replace('.', '/')}/`" in text, room


MAX_MODULE_LINES = 310  # "about 300"
MAX_FUNCTION_LINES = 60


def test_modules_and_functions_stay_small() -> None:
    big = []
    for top in sorted(TOP):
        for path in sorted((ROOT / top).rglob("*.py")):
            text = path.read_text()
            rel = path.relative_to(ROOT)
            if text.count("\n") > MAX_MODULE_LINES:
                big.append(f"{rel}: {text.count(chr(10))} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    n = (node.end_lineno or node.lineno) - node.lineno + 1
                    if n > MAX_FUNCTION_LINES:
                        big.append(f"{rel}: {node.name} {n} lines")
    assert not big, "\n".join(big)


def test_the_contracts_in_docs_are_the_teams_current_ones() -> None:
    """docs/design.md and docs/services.md are copies of the team's shared documents
    (``../shared`` beside the repository, as on CI) under a two-line header: when the
    shared ones change, the copies here must be taken again."""
    shared = ROOT.parent / "shared"
    if not (shared / "DESIGN.md").exists():
        pytest.skip("no ../shared beside this checkout")
    for mine, theirs in (("design.md", "DESIGN.md"), ("services.md", "SERVICES.md")):
        text = (ROOT / "docs" / mine).read_text()
        assert text.startswith("<!--"), mine
        body = text[text.index("-->") + 3:].lstrip("\n")
        assert body == (shared / theirs).read_text(), f"docs/{mine} differs from {theirs}"
