"""The launcher's finder (pyrunc/_boot.py): pyrunc's modules from their
compiled files, anything it cannot vouch for left to the standard import."""
from __future__ import annotations

import os
import py_compile
import subprocess
import sys
import textwrap

import pytest

from pyrunc import _boot


@pytest.fixture
def lib(tmp_path):
    """A copy of a tiny `pyrunc` package: a module, a sub-package, compiled."""
    pkg = tmp_path / "pyrunc"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text("VALUE = 1\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "leaf.py").write_text("from ..mod import VALUE\nLEAF = VALUE + 1\n")
    for p in (pkg / "mod.py", pkg / "sub" / "__init__.py", pkg / "sub" / "leaf.py"):
        py_compile.compile(str(p), doraise=True)
    return tmp_path


def run_with_finder(lib, code: str) -> str:
    """A fresh interpreter: the package from `lib`, the finder installed as
    the launcher installs it."""
    boot = os.path.dirname(_boot.__file__)
    prog = textwrap.dedent(f"""
        import sys, importlib.util
        spec = importlib.util.spec_from_file_location("_b", {os.path.join(boot, "_boot.py")!r})
        b = importlib.util.module_from_spec(spec); spec.loader.exec_module(b)
        sys.path.insert(0, {str(lib)!r})
        b.install({str(lib)!r})
    """) + textwrap.dedent(code)
    r = subprocess.run([sys.executable, "-I", "-c", prog], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_modules_and_packages_come_from_their_pyc(lib):
    out = run_with_finder(lib, """
        import pyrunc.sub.leaf as leaf, pyrunc.mod as mod, pyrunc.sub as sub
        print(type(leaf.__loader__).__name__, type(mod.__loader__).__name__, leaf.LEAF)
        print(sub.__path__ == [sub.__file__.rsplit("/", 1)[0]], leaf.__file__.endswith("sub/leaf.py"))
    """)
    assert out.split() == ["_Loader", "_Loader", "2", "True", "True"]


def test_a_stale_or_missing_pyc_is_left_to_the_standard_import(lib):
    mod = lib / "pyrunc" / "mod.py"
    mod.write_text("VALUE = 41  # edited after compiling\n")
    os.utime(mod, (1, 1))
    for pyc in (lib / "pyrunc" / "sub" / "__pycache__").glob("leaf.*.pyc"):
        pyc.unlink()
    out = run_with_finder(lib, """
        import pyrunc.mod as mod, pyrunc.sub.leaf as leaf
        print(type(mod.__loader__).__name__, mod.VALUE, type(leaf.__loader__).__name__, leaf.LEAF)
    """)
    assert out.split() == ["SourceFileLoader", "41", "SourceFileLoader", "42"]


def test_names_outside_the_package_are_not_ours(lib):
    assert _boot._Finder.find_spec("json") is None
    assert _boot._Finder.find_spec("pyrunckit.x") is None
    out = run_with_finder(lib, """
        try:
            import pyrunc.nothing_here
        except ImportError:
            print("ImportError")
    """)
    assert out.strip() == "ImportError"
