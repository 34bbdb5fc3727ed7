"""The uid and gid maps of an existing user namespace, given by path.

/proc/<pid>/ns/user is read through /proc/<pid>/{uid,gid}_map; any other
path (a bind-mounted nsfd) takes a short-lived child that joins the
namespace and reads its own maps, as runc's GetUserNamespaceMappings does.
"""
from __future__ import annotations

import os
import re

from .fdio import read_all

_PROC_USERNS = re.compile(r"/proc/([1-9][0-9]*)/ns/user")


def parse_map(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        f = line.split()
        if len(f) == 3:
            out.append({"containerID": int(f[0]), "hostID": int(f[1]), "size": int(f[2])})
    return out


def read_userns_maps(path: str) -> tuple[list[dict], list[dict]]:
    """(uid map, gid map) of the user namespace at `path`; OSError if unreadable."""
    m = _PROC_USERNS.fullmatch(path)
    if m:
        try:
            return _read(f"/proc/{m.group(1)}/uid_map"), _read(f"/proc/{m.group(1)}/gid_map")
        except OSError:
            pass  # the slow path says why
    st, own = os.stat(path), os.stat("/proc/self/ns/user")
    if (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino):  # setns into it would fail
        return _read("/proc/self/uid_map"), _read("/proc/self/gid_map")
    return _read_by_joining(path)


def _read(path: str) -> list[dict]:
    with open(path) as f:
        return parse_map(f.read())


def _read_by_joining(path: str) -> tuple[list[dict], list[dict]]:
    from ..linux import consts as C
    from ..linux import sys as L
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                try:
                    L.setns(fd, C.CLONE_NEWUSER)
                    data = b"".join(open(f"/proc/self/{n}", "rb").read() + b"--\n" for n in ("uid_map", "gid_map"))
                except OSError as e:
                    data = f"E{e.errno}".encode()
                os.write(w, data)
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        w = -1
        data = read_all(r)
        os.waitpid(pid, 0)
    finally:
        os.close(fd)
        os.close(r)
        if w >= 0:
            os.close(w)
    text = data.decode()
    if text.startswith("E") or text.count("--\n") != 2:
        err = int(text[1:]) if text[1:].isdigit() else 5  # EIO: the child died
        raise OSError(err, os.strerror(err))
    uid_text, gid_text, _ = text.split("--\n")
    return parse_map(uid_text), parse_map(gid_text)
