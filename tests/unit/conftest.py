"""Fixtures of the unit tests: `syscalls`, a recorder in place of the
syscall seam (pyrunc.linux.sys.sc) for the duration of a test."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # syscall_recorder

from syscall_recorder import RecordingSyscalls  # noqa: E402


@pytest.fixture
def syscalls(monkeypatch) -> RecordingSyscalls:
    from pyrunc.linux import sys as L
    rec = RecordingSyscalls()
    monkeypatch.setattr(L, "sc", rec)
    return rec
