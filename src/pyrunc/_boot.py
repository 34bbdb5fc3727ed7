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
            fd = os.open(pyc, _O_RDONLY)
        except OSError:
            return None
        try:  # plain reads: open() adds a buffer object, an isatty ioctl and seeks
            data = os.read(fd, _READ)
            while len(data) % _READ == 0 and data:
                more = os.read(fd, _READ)
                if not more:
                    break
                data += more
        except OSError:
            return None
        finally:
            os.close(fd)
        # magic, flags 0 (timestamp-based), source mtime and size
        if (len(data) < 16 or data[:4] != _MAGIC or data[4:8] != b"\0\0\0\0"
                or int.from_bytes(data[8:12], "little") != int(st.st_mtime) & 0xFFFFFFFF
                or int.from_bytes(data[12:16], "little") != st.st_size & 0xFFFFFFFF):
            return None
        # _Loader has what the import system calls (create_module, exec_module)
        # without importlib.abc's Loader base, which costs an import
        spec = _ModuleSpec(name, _Loader(data), origin=src, is_package=pkg)  # type: ignore[arg-type]
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
_O_RDONLY = os.O_RDONLY | os.O_CLOEXEC
_READ = 1 << 16  # larger than any of pyrunc's compiled modules


# the global flags that take a value (cli/main.py's GLOBAL_FLAGS)
_VALUED = ("log", "log-format", "root", "rootless")


def early(argv: list[str]) -> None:
    """For run, create and exec as root: start the cgroup pre-arm
    (pyrunc.cgroups.prearm_migration) before the command line's own imports.
    Its RCU grace period (7-10 ms, longer on a busy host) is the longest
    wait of a container start, and the parent's cgroup join waits for what
    is left of it: every millisecond it starts sooner is one off the start.
    main() calls the pre-arm again where it always did (a no-op once tried),
    so a command line this quick look misreads only loses the head start."""
    i = 1
    while i < len(argv):
        a = argv[i]
        if a[:1] != "-" or a == "-" or a == "--":
            break
        i += 2 if "=" not in a and a.lstrip("-") in _VALUED else 1
    if (i < len(argv) and argv[i] in ("run", "create", "exec") and "-h" not in argv
            and "--help" not in argv and os.geteuid() == 0):
        from pyrunc.cgroups import prearm_migration
        prearm_migration(argv[i], "--systemd-cgroup" in argv[1:i])


def install(root: str) -> None:
    """Find pyrunc's submodules under `root` first (see the module doc)."""
    global _MAGIC
    _MAGIC = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
    _Finder.root = root
    sys.meta_path.insert(0, _Finder)
