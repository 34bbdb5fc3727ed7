"""A stand-in for pyrunc.linux.sys.sc (the Syscalls seam) that records the
calls rootfs/ and init/ make instead of making them, so their order and
arguments can be checked without a kernel, root or namespaces.

Every call is one tuple in `calls`, the name first, with the arguments as
the real call takes them except that what names a file is shown as its
path: a `/proc/self/fd/N` magic link and an fd (fchdir, move_mount,
mount_setattr, a dir_fd) become the path the fd is open on, so a test
says `("mount", None, f"{root}/data", None, MS_BIND | MS_REMOUNT, None)`
rather than a descriptor number. The code under test keeps doing its
plain file work (openat2, mkdir, symlink) for real, on a temporary
directory standing for the rootfs.

Nothing is mounted, so a call returns success (open_tree: a real O_PATH fd
on its source, which the caller may close and inspect), or the error
`fail()` injected: the same OSError, text included, as the real wrapper
raises, so the error line the user would see can be asserted too.
"""
from __future__ import annotations

import errno as _errno
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from pyrunc.linux import sys as L

_FD_LINK = re.compile(r"/proc/self/fd/(\d+)\Z")
_AT_FDCWD = -100


def fd_where(fd: int) -> str:
    """The path an open fd names (its /proc/self/fd link)."""
    return os.readlink(f"/proc/self/fd/{fd}")


def shown(path: str | None) -> str | None:
    """A path argument as recorded: a /proc/self/fd/N link becomes its target."""
    if isinstance(path, str):
        m = _FD_LINK.match(path)
        if m:
            return fd_where(int(m.group(1)))
    return path


def _at(dirfd: int | None, path: str) -> str:
    """An (fd, path) pair of an *at() call as one path."""
    if dirfd is None or dirfd == _AT_FDCWD:
        return shown(path)
    base = fd_where(dirfd)
    return os.path.join(base, path) if path else base


@dataclass
class Fault:
    name: str
    errno: int
    when: Callable[[tuple], bool] | None
    times: int | None  # None: every matching call


class RecordingSyscalls:
    """Records every seam call; see the module docstring. Install it with
    `monkeypatch.setattr(pyrunc.linux.sys, "sc", RecordingSyscalls())`
    (the `syscalls` fixture in tests/unit/conftest.py)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.failed: list[tuple] = []  # the calls that got an injected error
        self._faults: list[Fault] = []

    # -- set-up and inspection ----------------------------------------------------
    def fail(self, name: str, err: int = _errno.EPERM, when: Callable[[tuple], bool] | None = None,
             times: int | None = 1) -> None:
        """Make the next `times` calls of `name` (those for which
        `when(call tuple)` is true) fail with errno `err`."""
        self._faults.append(Fault(name, err, when, times))

    def note(self, *what: object) -> None:
        """Put a marker in the call list (a hook or sync callback of the
        code under test), to check where it falls among the calls."""
        self.calls.append(what)

    def of(self, name: str) -> list[tuple]:
        """The arguments of every `name` call, in order."""
        return [c[1:] for c in self.calls if c[0] == name]

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def _act(self, call: tuple, error: Callable[[int], OSError]) -> None:
        self.calls.append(call)
        for f in self._faults:
            if f.name == call[0] and f.times != 0 and (f.when is None or f.when(call)):
                if f.times is not None:
                    f.times -= 1
                self.failed.append(call)
                raise error(f.errno)

    # -- the seam: pyrunc.linux.sys.Syscalls' methods, same signatures -------------
    def mount(self, source: str | None, target: str, fstype: str | None, flags: int = 0,
              data: str | None = None) -> None:
        self._act(("mount", shown(source), shown(target), fstype, flags, data),
                  lambda e: L.mount_error(e, source, target, fstype, flags))

    def umount2(self, target: str, flags: int = 0) -> None:
        self._act(("umount2", shown(target), flags), lambda e: OSError(e, f"umount {target}: {os.strerror(e)}"))

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._act(("pivot_root", new_root, put_old), lambda e: OSError(e, f"pivot_root: {os.strerror(e)}"))

    def open_tree(self, dirfd: int, path: str, flags: int) -> int:
        where = _at(dirfd, path)
        self._act(("open_tree", where, flags), lambda e: OSError(e, f"open_tree: {os.strerror(e)}"))
        return os.open(where, os.O_PATH | os.O_CLOEXEC)  # the "detached tree": its source

    def move_mount(self, from_dirfd: int, from_path: str, to_dirfd: int, to_path: str, flags: int) -> None:
        self._act(("move_mount", _at(from_dirfd, from_path), _at(to_dirfd, to_path), flags),
                  lambda e: OSError(e, f"move_mount: {os.strerror(e)}"))

    def mount_setattr(self, dirfd: int, path: str, flags: int, attr_set: int, attr_clr: int = 0,
                      propagation: int = 0, userns_fd: int = 0) -> None:
        self._act(("mount_setattr", _at(dirfd, path), flags, attr_set, attr_clr, propagation, userns_fd),
                  lambda e: OSError(e, f"mount_setattr {path}: {os.strerror(e)}"))

    def unshare(self, flags: int) -> None:
        self._act(("unshare", flags), lambda e: OSError(e, f"unshare: {os.strerror(e)}"))

    def chdir(self, path: str) -> None:
        self._act(("chdir", shown(path)), lambda e: OSError(e, os.strerror(e), path))

    def fchdir(self, fd: int) -> None:
        self._act(("fchdir", fd_where(fd)), lambda e: OSError(e, os.strerror(e)))

    def chroot(self, path: str) -> None:
        self._act(("chroot", shown(path)), lambda e: OSError(e, os.strerror(e), path))

    def mknod(self, path: str, mode: int = 0o600, device: int = 0, *, dir_fd: int | None = None) -> None:
        self._act(("mknod", _at(dir_fd, path), mode, device), lambda e: OSError(e, os.strerror(e), path))

    def chown(self, path: str, uid: int, gid: int, *, dir_fd: int | None = None,
              follow_symlinks: bool = True) -> None:
        self._act(("chown", _at(dir_fd, path), uid, gid), lambda e: OSError(e, os.strerror(e), path))
