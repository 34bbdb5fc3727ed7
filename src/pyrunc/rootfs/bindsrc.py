"""Bind mount sources the container's root cannot reach (runc's
"userns with inaccessible mount" case).

The init mounts from inside the container's user namespace, whose root is an
unprivileged uid on the host: a source under a 0700 root-owned directory
fails its stat with EACCES. As runc 1.2+ does, the init then asks the runtime
parent, still root on the host, for the source: the parent clones the tree
(open_tree OPEN_TREE_CLONE, recursive for rbind) and passes the detached
mount over the sync channel; the init move_mount()s it onto the target it
resolved inside the rootfs. Only asked for on EACCES/EPERM: the common path
does not change.
"""
from __future__ import annotations

import errno
import os

from ..linux import consts as C

# a source the init may ask the host for
REFUSED = (errno.EACCES, errno.EPERM)


def source_tree(m: dict, bundle: str) -> int | None:
    """Host side: a detached clone of the mount's source, or None if we
    cannot make one either (a rootless parent): the init then reports its
    own error."""
    from ..linux import sys as L
    src = m.get("source") or ""
    if not src.startswith("/"):
        src = os.path.join(bundle, src)
    recursive = "rbind" in (m.get("options") or [])
    flags = C.OPEN_TREE_CLONE | C.OPEN_TREE_CLOEXEC | (C.AT_RECURSIVE if recursive else 0)
    try:
        return L.open_tree(-100, src, flags)  # AT_FDCWD
    except OSError:
        return None


def attach(tree: int, target_fd: int) -> None:
    """Init side: put the detached tree on the target (an O_PATH fd)."""
    from ..linux import sys as L
    L.move_mount(tree, "", target_fd, "", C.MOVE_MOUNT_F_EMPTY_PATH | C.MOVE_MOUNT_T_EMPTY_PATH)
