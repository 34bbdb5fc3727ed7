"""Idmapped bind mounts (`idmap`/`ridmap` options), made by the runtime parent.

Setting MOUNT_ATTR_IDMAP needs privilege over the file system's user
namespace, which the container init (inside its own user namespace) lacks.
So the parent, with its host privileges, clones the source tree (open_tree)
from inside the container's mount namespace (a source may lie under an
earlier container mount), idmaps the detached copy with a user namespace fd,
and passes it to the init over the sync channel; the init move_mount()s it
onto the target it resolved inside the rootfs. The user namespace is the
mount's own (`uidMappings`/`gidMappings` on the mount, made for the purpose)
or else the container's. A mount's own mappings make it idmapped without the
"idmap" option, as in runc.
"""
from __future__ import annotations

import os

from ..errors import ConfigError, PyruncError
from ..linux import consts as C
from .options import is_idmapped

TYPE_CHECKING = False  # typing is not imported on the start-up path
if TYPE_CHECKING:
    from collections.abc import Callable


def validate(m: dict, has_userns: bool, where: str | None = None) -> None:
    """runc's rules for an id-mapped mount; `where` is its field path
    ("mounts[2]") for the ConfigError."""
    opts = set(m.get("options") or [])
    if not is_idmapped(m):
        return
    if not (m.get("type") == "bind" or opts & {"bind", "rbind"}):
        raise ConfigError(f"mount {m.get('destination')}: idmapped mounts are only supported for bind mounts",
                          where and where + ".type")
    has_maps = bool(m.get("uidMappings")) or bool(m.get("gidMappings"))
    if (m.get("uidMappings") is not None or m.get("gidMappings") is not None) and not (m.get("uidMappings") and m.get("gidMappings")):
        raise ConfigError(f"mount {m.get('destination')}: idmapped mounts need both uidMappings and gidMappings",
                          where and where + (".gidMappings" if m.get("uidMappings") else ".uidMappings"))
    if os.geteuid() != 0:
        raise ConfigError(f"mount {m.get('destination')}: id-mapped mounts are not supported for rootless containers",
                          where)
    if not has_maps and not has_userns:
        raise ConfigError(f"mount {m.get('destination')}: idmapped mount without its own uidMappings/gidMappings "
                          "needs a user namespace in the container", where and where + ".uidMappings")


def mount_source(m: dict, bundle: str, init_pid: int, kind: str) -> int:
    """The parent's answer to the init's "I" request: an fd for the mount's
    source, opened in the container's mount namespace, where the earlier
    container mounts are visible (a source may lie under one) — as runc's
    mount source thread. `kind` "idmap": a detached clone, idmapped; "open":
    an O_PATH fd, for a source the init itself cannot reach (a user
    namespace without search permission on its parents). -1 when a rootless
    parent cannot help: the init then reports its own error."""
    if os.geteuid() != 0:
        return -1
    src = m.get("source") or ""
    if not src.startswith("/"):
        src = os.path.join(bundle, src)
    if kind != "idmap":
        return _in_mount_ns(init_pid, lambda: os.open(src, os.O_PATH | os.O_CLOEXEC), m, src)
    if m.get("uidMappings") is not None:
        userns = _userns_with_maps(m["uidMappings"], m["gidMappings"])
    else:
        userns = os.open(f"/proc/{init_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _in_mount_ns(init_pid, lambda: _idmapped_tree(m, src, userns), m, src)
    finally:
        os.close(userns)


def _idmapped_tree(m: dict, src: str, userns: int) -> int:
    from ..linux import sys as L
    opts = m.get("options") or []
    recursive = "rbind" in opts  # the clone takes the submounts; "ridmap" maps them too
    flags = C.OPEN_TREE_CLONE | C.OPEN_TREE_CLOEXEC | (C.AT_RECURSIVE if recursive else 0)
    try:
        tree = L.sc.open_tree(-100, src, flags)  # AT_FDCWD
    except OSError as e:
        raise PyruncError(f"open_tree(OPEN_TREE_CLONE) {src}: {os.strerror(e.errno or 0)}") from None
    try:
        attr_flags = C.AT_EMPTY_PATH | (C.AT_RECURSIVE if "ridmap" in opts else 0)
        L.sc.mount_setattr(tree, "", attr_flags, C.MOUNT_ATTR_IDMAP, userns_fd=userns)
    except OSError as e:
        os.close(tree)
        extra = " (maybe the filesystem used doesn't support idmap mounts on this kernel?)" if e.errno == 22 else ""
        raise PyruncError(f"failed to set MOUNT_ATTR_IDMAP on {src}: {os.strerror(e.errno or 0)}{extra}") from None
    return tree


def _in_mount_ns(init_pid: int, make: Callable[[], int], m: dict, src: str) -> int:
    """Run `make` in a child that joined the init's mount namespace; the fd
    it returns comes back over a socketpair (the parent itself never
    changes namespace)."""
    import _socket
    from ..linux import sys as L
    ns = os.open(f"/proc/{init_pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    mine, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                mine.close()
                L.setns(ns, C.CLONE_NEWNS)
                fd = make()
                theirs.sendmsg([b"ok"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd.to_bytes(4, "little"))])
            except PyruncError as e:
                theirs.send(b"E" + str(e).encode())
            except OSError as e:
                theirs.send(b"E" + f"{src}: {e.strerror}".encode())
            except BaseException as e:  # noqa: BLE001 - one line for the parent
                theirs.send(b"E" + f"{type(e).__name__}: {e}".encode())
            finally:
                os._exit(0)
        theirs.close()
        data, anc, _, _ = mine.recvmsg(4096, _socket.CMSG_SPACE(4))
        os.waitpid(pid, 0)
    finally:
        os.close(ns)
        mine.close()
        theirs.close()
    fds = [int.from_bytes(d[:4], "little") for lvl, typ, d in anc if typ == _socket.SCM_RIGHTS]
    if data == b"ok" and fds:
        return fds[0]
    for fd in fds:
        os.close(fd)
    why = data[1:].decode(errors="replace") if data.startswith(b"E") else "the mount source helper died"
    raise PyruncError(f"mountfd request for {m.get('source')!r} failed: {why}")


def _userns_with_maps(uid_maps: list[dict], gid_maps: list[dict]) -> int:
    """A user namespace holding exactly these maps: a child creates it, we map
    it and keep an fd, the child goes."""
    from ..linux import sys as L
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(w)
            L.unshare(C.CLONE_NEWUSER)
            os.read(r, 1)  # wait until the parent is done with us
        finally:
            os._exit(0)
    os.close(r)
    try:
        # the child needs a moment to unshare; its ns link changes when it has
        for _ in range(1000):
            if os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user"):
                break
            import time
            time.sleep(0.0005)
        from ..linux.sys import id_map_text
        for name, maps in (("uid_map", uid_maps), ("gid_map", gid_maps)):
            with open(f"/proc/{pid}/{name}", "wb") as f:
                f.write(id_map_text(maps))
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(w)
        os.waitpid(pid, 0)
