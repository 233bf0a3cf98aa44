"""The batch challenger's fit process (core/fit_process.py) ends with the process that
started it: a learner killed with SIGKILL leaves no fit process behind."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_the_fit_process_ends_with_the_process_that_started_it() -> None:
    code = ("from core import fit_process\n"
            "fit_process.warm_up()\n"
            "print(next(iter(fit_process._POOL._processes)), flush=True)\n"
            "import time; time.sleep(120)\n")
    owner = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert owner.stdout is not None
        child = int(owner.stdout.readline())
        time.sleep(1.0)
        assert alive(child)  # it waits for fits while its owner lives
        owner.kill()
        owner.wait(10)
        deadline = time.monotonic() + 10
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(child)
    finally:
        owner.kill()
