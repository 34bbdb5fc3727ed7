"""A container without a mount namespace of its own (runc allows it): it
shares the runtime's, so its mounts land there, under the rootfs.

The runtime binds the rootfs onto itself before the init starts; the init
mounts under that bind and chroots into it (pivot_root needs a mount
namespace of its own). `delete` detaches the bind, and with it every mount
the container made, where runc leaves them all on the host.

Unlike runc, the host's own propagation is left alone (runc makes the whole
host tree rslave and the rootfs' parent mount private): only the bind gets
`linux.rootfsPropagation` (rslave by default), so the container's mounts do
not propagate back to the host.
"""
from __future__ import annotations

import errno
import os

from ..errors import PyruncError
from ..linux import consts as C
from ..linux import sys as L

_AT_FDCWD = -100


def bind_rootfs(rootfs: str, propagation: str | None, record=None) -> int:
    """Bind `rootfs` onto itself; returns the bind's mount id (for release).
    `record(mount id)` is called before the bind is attached (a detached
    clone until then, which vanishes with us): a create killed at any
    moment leaves no bind that its `delete` cannot name."""
    from .options import PROPAGATION
    try:
        _attach_bind(rootfs, record)
    except OSError as e:
        raise PyruncError(f"error preparing rootfs: bind {rootfs}: {os.strerror(e.errno or 0).lower()}") from None
    try:
        L.sc.mount(None, rootfs, None, PROPAGATION.get(propagation or "", C.MS_SLAVE | C.MS_REC))
        mnt_id = _mnt_id(rootfs)
    except OSError as e:
        mnt_id, why = 0, os.strerror(e.errno or 0).lower()
    else:
        why = "its mount id is unknown"
    if not mnt_id:
        L.sc.umount2(rootfs, C.MNT_DETACH)
        raise PyruncError(f"error preparing rootfs: {rootfs}: {why}")
    return mnt_id


def release(rootfs: str, mnt_id: int) -> None:
    """Detach our bind and whatever was mounted on top of it, if it is still
    there: lazily, so that processes still using it do not stop the cleanup."""
    real = os.path.realpath(rootfs)
    for _ in range(64):  # each round removes the topmost mount at rootfs
        if mnt_id not in _mounts_at(real):
            return
        top = _mnt_id(real)
        try:
            L.sc.umount2(real, C.MNT_DETACH)
        except OSError:
            return
        if top == mnt_id:
            return


def _attach_bind(rootfs: str, record) -> None:
    """A recursive clone of `rootfs` (open_tree), recorded, then moved onto
    it; a plain recursive bind where the kernel lacks the new mount API."""
    try:
        tree = L.sc.open_tree(_AT_FDCWD, rootfs, C.OPEN_TREE_CLONE | C.AT_RECURSIVE | C.OPEN_TREE_CLOEXEC)
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
        L.sc.mount(rootfs, rootfs, "bind", C.MS_BIND | C.MS_REC)
        if record is not None:
            record(_mnt_id(rootfs))
        return
    try:
        if record is not None:
            record(_fd_mnt_id(tree))
        L.sc.move_mount(tree, "", _AT_FDCWD, rootfs, C.MOVE_MOUNT_F_EMPTY_PATH)
    finally:
        os.close(tree)


def _mnt_id(path: str) -> int:
    """The id of the mount `path` resolves to (the topmost one there)."""
    try:
        fd = os.open(path, C.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        return _fd_mnt_id(fd)
    finally:
        os.close(fd)


def _fd_mnt_id(fd: int) -> int:
    """The id of the mount an fd is on (0 if unknown)."""
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            for line in f:
                if line.startswith("mnt_id:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _mounts_at(path: str) -> set[int]:
    """Ids of the mounts whose mount point is `path` (/proc/self/mountinfo)."""
    ids: set[int] = set()
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            for line in f:
                fields = line.split(b" ", 5)
                if len(fields) > 4 and _unescape(fields[4]) == path:
                    ids.add(int(fields[0]))
    except (OSError, ValueError):
        pass
    return ids


def _unescape(field: bytes) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    if b"\\" in field:
        import re
        field = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), field)
    return os.fsdecode(field)
