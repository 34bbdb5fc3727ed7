"""Stage.fork's collector freeze: its own is undone in the caller after the
fork (a long-lived library caller must not keep every object alive), and a
caller's own freeze (the shim's zygote, whose frozen imports its forked
shims share) is left as it was, not undone with it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

SCRIPT = r"""
import gc, sys
from pyrunc.init.stage import Stage
if sys.argv[1] == "frozen":
    gc.freeze()
before = gc.get_freeze_count()
junk = [[i] for i in range(1000)]  # tracked objects made after that freeze
s = Stage.fork()
after = gc.get_freeze_count()
s.abandon()
print(before, after)
"""


def _counts(mode: str) -> tuple[int, int]:
    r = subprocess.run([sys.executable, "-c", SCRIPT, mode], env=dict(os.environ, PYTHONPATH=str(SRC)),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    before, after = map(int, r.stdout.split())
    return before, after


def test_its_own_freeze_is_undone():
    assert _counts("plain") == (0, 0)


def test_a_callers_freeze_is_kept_and_not_grown():
    before, after = _counts("frozen")
    assert before > 0 and after == before
