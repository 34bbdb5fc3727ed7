"""The task's root filesystem: CreateTaskRequest.rootfs mounted onto
<bundle>/rootfs, as containerd's shim does (mount.All), and unmounted on
Delete (mount.UnmountAll: every mount stacked there).

Each containerd Mount is (type, source, options): "bind" (with "rbind",
"ro", ...) or a filesystem such as "overlay" whose data options
(lowerdir=..., upperdir=...) go to mount(2) as they are.
"""
from __future__ import annotations

import errno
import os

MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC = 0x1, 0x20, 0x1000, 0x4000
MNT_DETACH = 2


def mount_all(mounts: list, target: str) -> None:
    from pyrunc.linux import sys as L
    from pyrunc.rootfs.options import parse
    os.makedirs(target, mode=0o711, exist_ok=True)
    done = 0
    try:
        for mnt in mounts:
            opts = parse(list(mnt.options))
            flags = opts.flags
            fstype = mnt.type
            if fstype == "bind" or flags & MS_BIND:
                fstype = None
                flags |= MS_BIND
                L.mount(mnt.source, target, None, flags & ~MS_RDONLY, None)
                done += 1
                if flags & MS_RDONLY:  # a bind is read-only only once remounted so
                    L.mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
            else:
                L.mount(mnt.source, target, fstype, flags, opts.data_str or None)
                done += 1
            for prop in opts.propagation:
                L.mount(None, target, None, prop, None)
    except BaseException:
        for _ in range(done):
            _umount(target)
        raise


def unmount_all(target: str) -> None:
    """Every mount on target, the last made first, until none is left."""
    for _ in range(64):
        if not _umount(target):
            return


def _umount(target: str) -> bool:
    from pyrunc.linux import sys as L
    try:
        L.umount2(target, MNT_DETACH)
        return True
    except OSError as e:
        if e.errno in (errno.EINVAL, errno.ENOENT):
            return False
        raise
