"""The Lua scripts of ``state/lua/``, loaded in one place. A script is its file with the
shared helpers it needs prepended (``aggregates.lua``: the window sums, the long-range
walk; ``value_summary.lua``: a customer's BG/NBD summary).

>>> len(SCRIPTS), sorted(SCRIPTS)[:4]
(7, ['aggregates_at', 'apply_event', 'commit_batch', 'rank_scores'])
>>> SCRIPTS["apply_event"].startswith(source("aggregates.lua"))
True
"""

from __future__ import annotations

from importlib import resources


def source(name: str) -> str:
    return resources.files("state").joinpath("lua", name).read_text()


_NEEDS = {  # script -> the helper files before it
    "apply_event": ("aggregates.lua", "months.lua"),
    "commit_batch": (),
    "aggregates_at": ("aggregates.lua",),
    "write_scores": (),
    "rank_scores": (),
    "value_scan": ("aggregates.lua", "value_summary.lua"),
    "value_rows": ("aggregates.lua", "value_summary.lua"),
}
SCRIPTS = {name: "".join(source(f) for f in (*helpers, f"{name}.lua"))
           for name, helpers in _NEEDS.items()}
