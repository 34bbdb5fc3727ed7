"""Shared pytest setup for pyrunc's test suites.

The integration suite is runtime-agnostic: the runtime under test is taken from
the environment variable PYRUNC_TEST_RUNTIME (a path, a name on PATH, or a
command line such as "python3 -m pyrunc"); by default it is `pyrunc` on PATH,
or `python3 -m pyrunc` from this checkout's src/ when pyrunc is not installed.
Run the same suite against the reference with PYRUNC_TEST_RUNTIME=runc.

Markers:
  slow                      a test that takes a second or more.
  runc_ref_differs(reason)  the contract checked follows newer runc (1.2-1.5);
                            Debian's runc 1.1.5 behaves differently, so the test
                            is an xfail when (and only when) the runtime under
                            test is runc. run=False: not even run for runc.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent
SRC_DIR = REPO_DIR / "src"

# Make `import pyrunc` work from a plain checkout (helpers such as
# tests/integration/helpers_console.py use pyrunc.terminal when available).
if SRC_DIR.is_dir() and str(SRC_DIR) not in sys.path:
    sys.path.insert(0, str(SRC_DIR))
# helpers shared by the integration and client tests (test_user.py)
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))


@dataclass(frozen=True)
class RuntimeInfo:
    """What runtime the integration suite drives."""

    cmd: tuple[str, ...]  # argv prefix, e.g. ("/usr/sbin/runc",)
    name: str  # basename of the executable ("runc", "pyrunc", "python3 -m pyrunc")
    is_runc: bool  # the reference runc (runc_ref_differs tests xfail)
    env: tuple[tuple[str, str], ...] = ()  # extra environment for every call

    @property
    def display(self) -> str:
        return shlex.join(self.cmd)


@functools.lru_cache(maxsize=None)
def runtime_info() -> RuntimeInfo | None:
    spec = os.environ.get("PYRUNC_TEST_RUNTIME", "").strip()
    env: tuple[tuple[str, str], ...] = ()
    if spec:
        argv = shlex.split(spec)
        exe = shutil.which(argv[0]) or argv[0]
        if not os.path.exists(exe):
            return None
        cmd = (os.path.realpath(exe) if os.sep in exe else exe, *argv[1:])
    else:
        exe = shutil.which("pyrunc")
        if exe:
            cmd = (exe,)
        elif (SRC_DIR / "pyrunc" / "__main__.py").is_file():
            cmd = (sys.executable, "-m", "pyrunc")
            env = (("PYTHONPATH", str(SRC_DIR)),)
        else:
            return None
    base = os.path.basename(cmd[0])
    name = base if len(cmd) == 1 else " ".join([base, *cmd[1:]])
    is_runc = len(cmd) == 1 and base == "runc"
    return RuntimeInfo(cmd=tuple(cmd), name=name, is_runc=is_runc, env=env)


@functools.lru_cache(maxsize=None)
def runtime_version_text() -> str:
    info = runtime_info()
    if info is None:
        return ""
    try:
        out = subprocess.run(
            [*info.cmd, "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, **dict(info.env)},
        )
        return (out.stdout or out.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:  # pragma: no cover
        return f"<--version failed: {e}>"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes a second or more (deselect with -m 'not slow')")
    config.addinivalue_line(
        "markers",
        "runc_ref_differs(reason, run=True): follows newer runc; xfail only when the runtime under test is runc",
    )


@pytest.fixture(scope="session")
def runtime_under_test() -> RuntimeInfo | None:
    """RuntimeInfo of the runtime under test (None if it cannot be found)."""
    return runtime_info()


def pytest_report_header(config: pytest.Config) -> list[str]:
    info = runtime_info()
    if info is None:
        return ["runtime under test: NOT FOUND (set PYRUNC_TEST_RUNTIME)"]
    first = runtime_version_text().splitlines()[:1]
    return [f"runtime under test: {info.display} ({first[0] if first else '?'})"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    info = runtime_info()
    if info is None or not info.is_runc:
        return
    for item in items:
        for mark in item.iter_markers("runc_ref_differs"):
            reason = mark.kwargs.get("reason") or (mark.args[0] if mark.args else "")
            run = mark.kwargs.get("run", True)
            item.add_marker(
                pytest.mark.xfail(
                    reason=f"runc_ref_differs: {reason}",
                    run=run,
                    strict=False,
                )
            )
