"""Idmapped bind mounts (`idmap`/`ridmap` options), made by the runtime parent.

Setting MOUNT_ATTR_IDMAP needs privilege over the file system's user
namespace, which the container init (inside its own user namespace) lacks.
So the parent, still on the host, clones the source tree (open_tree), idmaps
the detached copy with a user namespace fd, and passes it to the init over the
sync channel; the init move_mount()s it onto the target it resolved inside the
rootfs. The user namespace is the mount's own (`uidMappings`/`gidMappings` on
the mount, made for the purpose) or else the container's.
"""
from __future__ import annotations

import os

from ..errors import PyruncError
from ..linux import consts as C


def is_idmapped(m: dict) -> bool:
    """runc: "idmap"/"ridmap", or a mount's own mappings without either."""
    return (bool(set(m.get("options") or []) & {"idmap", "ridmap"})
            or m.get("uidMappings") is not None or m.get("gidMappings") is not None)


def validate(m: dict, has_userns: bool) -> None:
    opts = set(m.get("options") or [])
    if not is_idmapped(m):
        return
    if not (m.get("type") == "bind" or opts & {"bind", "rbind"}):
        raise PyruncError(f"mount {m.get('destination')}: idmapped mounts are only supported for bind mounts")
    has_maps = bool(m.get("uidMappings")) or bool(m.get("gidMappings"))
    if (m.get("uidMappings") is not None or m.get("gidMappings") is not None) and not (m.get("uidMappings") and m.get("gidMappings")):
        raise PyruncError(f"mount {m.get('destination')}: idmapped mounts need both uidMappings and gidMappings")
    if not has_maps and not has_userns:
        raise PyruncError(f"mount {m.get('destination')}: idmapped mount without its own uidMappings/gidMappings "
                          "needs a user namespace in the container")


def idmapped_tree(m: dict, bundle: str, container_userns: str) -> int:
    """A detached, idmapped clone of the mount's source; the caller sends it on."""
    from ..linux import sys as L
    src = m.get("source") or ""
    if not src.startswith("/"):
        src = os.path.join(bundle, src)
    recursive = "ridmap" in (m.get("options") or []) or "rbind" in (m.get("options") or [])
    flags = C.OPEN_TREE_CLONE | C.OPEN_TREE_CLOEXEC | (C.AT_RECURSIVE if recursive else 0)
    try:
        tree = L.open_tree(-100, src, flags)  # AT_FDCWD
    except OSError as e:
        raise PyruncError(f"idmapped mount {m.get('destination')}: open_tree {src}: {os.strerror(e.errno)}") from None
    try:
        if m.get("uidMappings"):
            userns = _userns_with_maps(m["uidMappings"], m["gidMappings"])
        else:
            userns = os.open(container_userns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            attr_flags = C.AT_EMPTY_PATH | (C.AT_RECURSIVE if "ridmap" in (m.get("options") or []) else 0)
            L.mount_setattr(tree, "", attr_flags, C.MOUNT_ATTR_IDMAP, userns_fd=userns)
        finally:
            os.close(userns)
    except OSError as e:
        os.close(tree)
        raise PyruncError(f"idmapped mount {m.get('destination')}: {os.strerror(e.errno)}") from None
    except BaseException:
        os.close(tree)
        raise
    return tree


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
        from ..container.launch import id_map_text
        for name, maps in (("uid_map", uid_maps), ("gid_map", gid_maps)):
            with open(f"/proc/{pid}/{name}", "wb") as f:
                f.write(id_map_text(maps))
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(w)
        os.waitpid(pid, 0)
