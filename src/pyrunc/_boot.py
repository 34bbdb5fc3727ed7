"""A faster import of pyrunc's own modules, for the `pyrunc` launcher.

Each command imports 30 to 40 of pyrunc's modules, and the stage child a
dozen more. Python's path finder spends about 45 us of CPU on each (the
search of the package directory for five suffixes, the loader's path checks)
before it reads the compiled file: a millisecond and a half per container
start. `install()` puts a finder first on sys.meta_path that knows where
pyrunc's compiled files are: one stat of the source, one read of the .pyc,
whose header must match the source's size and mtime as the standard loader
requires; anything else (a missing or stale .pyc, a hash-based .pyc, a name
outside the package) is left to the standard machinery.

Only the launcher installs it; `import pyrunc` from a program does not.
"""
from __future__ import annotations

import marshal
import os
import sys

_TAG = sys.implementation.cache_tag
_ModuleSpec = type(__spec__)


class _Finder:
    root = ""  # the directory that holds the pyrunc package

    @classmethod
    def find_spec(cls, name: str, path=None, target=None):
        if not name.startswith("pyrunc.") or _TAG is None:
            return None
        base = os.path.join(cls.root, *name.split("."))
        try:
            st = os.stat(base + ".py")
            src, folder, stem, pkg = base + ".py", os.path.dirname(base), os.path.basename(base), False
        except OSError:
            try:
                st = os.stat(os.path.join(base, "__init__.py"))
            except OSError:
                return None
            src, folder, stem, pkg = os.path.join(base, "__init__.py"), base, "__init__", True
        pyc = os.path.join(folder, "__pycache__", f"{stem}.{_TAG}.pyc")
        try:
            with open(pyc, "rb") as f:
                data = f.read()
        except OSError:
            return None
        # magic, flags 0 (timestamp-based), source mtime and size
        if (len(data) < 16 or data[:4] != _MAGIC or data[4:8] != b"\0\0\0\0"
                or int.from_bytes(data[8:12], "little") != int(st.st_mtime) & 0xFFFFFFFF
                or int.from_bytes(data[12:16], "little") != st.st_size & 0xFFFFFFFF):
            return None
        spec = _ModuleSpec(name, _Loader(data), origin=src, is_package=pkg)
        if pkg:
            spec.submodule_search_locations = [folder]
        spec.cached = pyc
        spec.has_location = True
        return spec


class _Loader:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        code = marshal.loads(memoryview(self.data)[16:])
        self.data = b""
        exec(code, module.__dict__)


_MAGIC = b""


def install(root: str) -> None:
    """Find pyrunc's submodules under `root` first (see the module doc)."""
    global _MAGIC
    _MAGIC = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
    _Finder.root = root
    sys.meta_path.insert(0, _Finder)
