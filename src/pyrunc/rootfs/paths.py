"""Resolving paths inside the rootfs without ever leaving it.

Every mount target and device path from the config is opened with openat2
(RESOLVE_IN_ROOT: symlinks, `..` and absolute links stay inside the root) and
then mounted onto /proc/self/fd/N, so a symlink swapped in by the image or a
racing container process cannot redirect a mount onto the host
(CVE-2021-30465, CVE-2019-19921, CVE-2023-27561).
"""
from __future__ import annotations

import os
import stat

from ..linux import consts as C
from ..linux import sys as L

_RESOLVE = C.RESOLVE_IN_ROOT | C.RESOLVE_NO_MAGICLINKS


def open_in_root(rootfd: int, path: str, flags: int = C.O_PATH) -> int:
    """An fd for `path` resolved inside the root at `rootfd`."""
    rel = path.lstrip("/") or "."
    return L.openat2(rootfd, rel, flags, _RESOLVE)


def fd_path(fd: int) -> str:
    """The magic link through which a mount lands exactly on what fd names."""
    return f"/proc/self/fd/{fd}"


def mkdir_all(rootfd: int, path: str, mode: int = 0o755) -> int:
    """Create `path` (and its parents) inside the root; returns an O_PATH fd.

    Walks one component at a time: a symlink is followed *inside* the root
    (absolute targets restart from the root, `..` stops at it), a missing
    directory is created where the link points, as runc's MkdirAllInRoot
    does. Each step is opened with O_NOFOLLOW, so a component swapped for a
    symlink after it was checked fails instead of leading out.
    """
    try:
        return open_in_root(rootfd, path, C.O_PATH | os.O_DIRECTORY)
    except FileNotFoundError:
        pass
    fd = _mkdir_last(rootfd, path, mode)
    if fd >= 0:
        return fd
    parts = [p for p in path.split("/") if p]
    parts.reverse()
    stack: list[int] = []
    cur = os.open(".", C.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=rootfd)
    links = 0
    try:
        while parts:
            name = parts.pop()
            if name == ".":
                continue
            if name == "..":
                if stack:
                    os.close(cur)
                    cur = stack.pop()
                continue
            try:
                st = os.stat(name, dir_fd=cur, follow_symlinks=False)
            except FileNotFoundError:
                try:
                    os.mkdir(name, mode, dir_fd=cur)
                except FileExistsError:
                    pass
                st = os.stat(name, dir_fd=cur, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > 40:
                    raise OSError(40, f"{path}: too many levels of symbolic links")
                target = os.readlink(name, dir_fd=cur)
                if target.startswith("/"):
                    for fd in stack:
                        os.close(fd)
                    stack.clear()
                    os.close(cur)
                    cur = os.open(".", C.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=rootfd)
                parts.extend(reversed([p for p in target.split("/") if p]))
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(20, f"{path}: not a directory")
            nxt = os.open(name, C.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=cur)
            stack.append(cur)
            cur = nxt
        return cur
    except BaseException:
        os.close(cur)
        raise
    finally:
        for fd in stack:
            os.close(fd)


def _mkdir_last(rootfd: int, path: str, mode: int) -> int:
    """mkdir_all's common case in five system calls instead of a walk:
    only the last component is missing. Its parent is resolved inside the
    root; the new directory is opened with O_NOFOLLOW. -1 when that is not
    the case (a missing parent, a symlink or a file in the last place, a
    race): the walk decides then."""
    head, _, name = path.rstrip("/").rpartition("/")
    if name in ("", ".", ".."):
        return -1
    try:
        parent = open_in_root(rootfd, head or "/", C.O_PATH | os.O_DIRECTORY)
    except OSError:
        return -1
    try:
        try:
            os.mkdir(name, mode, dir_fd=parent)
        except FileExistsError:
            pass
        return os.open(name, C.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError:
        return -1
    finally:
        os.close(parent)


def strip_root(root: str, path: str) -> str:
    """`path` clean and absolute, relative to the rootfs: a destination that
    names the rootfs by its host path loses that prefix (runc's
    LexicallyStripRoot)."""
    root = os.path.normpath("/" + root.lstrip("/"))
    path = os.path.normpath("/" + path.lstrip("/"))
    if path == root:
        return "/"
    if root != "/" and path.startswith(root + "/"):
        return path[len(root):]
    return path


def resolve_dangling(rootfd: int, path: str) -> str:
    """`path` with every symlink on it resolved inside the root, a missing
    component taken as a plain name from there on (as runc's
    "hallucinated" SecureJoin path): where a file created through a dangling
    symlink lands. Only a name to create: callers still open it in root."""
    parts = [p for p in path.split("/") if p]
    parts.reverse()
    done: list[str] = []
    links = 0
    missing = False
    while parts:
        name = parts.pop()
        if name == ".":
            continue
        if name == "..":
            if done:
                done.pop()
            continue
        if not missing:
            try:
                st = os.stat("/".join(done + [name]), dir_fd=rootfd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                missing = True
            else:
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    if links > 40:
                        raise OSError(40, f"{path}: too many levels of symbolic links")
                    target = os.readlink("/".join(done + [name]), dir_fd=rootfd)
                    if target.startswith("/"):
                        done = []
                    parts.extend(reversed([p for p in target.split("/") if p]))
                    continue
        done.append(name)
    return "/" + "/".join(done)


def create_file(rootfd: int, path: str, mode: int = 0o644) -> int:
    """Create an empty file at `path` inside the root (a bind-mount target for
    a file), through dangling symlinks as runc does; returns an O_PATH fd."""
    try:
        return open_in_root(rootfd, path, C.O_PATH)
    except FileNotFoundError:
        pass
    path = resolve_dangling(rootfd, path)
    parent, name = os.path.split(path.rstrip("/"))
    pfd = mkdir_all(rootfd, parent or "/")
    try:
        fd = os.open(name, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=pfd)
        os.close(fd)
    except FileExistsError:
        pass
    finally:
        os.close(pfd)
    return open_in_root(rootfd, path, C.O_PATH)


def is_symlink_in_root(rootfd: int, path: str) -> bool:
    """True when the last component of `path` (parents resolved in root) is a symlink."""
    parent, name = os.path.split(path.rstrip("/"))
    try:
        pfd = open_in_root(rootfd, parent or "/", C.O_PATH | os.O_DIRECTORY)
    except FileNotFoundError:
        return False
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=pfd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False
    finally:
        os.close(pfd)
