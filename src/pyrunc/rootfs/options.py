"""Mount options from config.json to mount(2) flags, as runc parses them.

Pure logic, unit-tested: each option either sets or clears a flag, sets a
propagation type, sets or clears a recursive mount_setattr attribute, or is
passed to the kernel as filesystem data.
"""
from __future__ import annotations

from ..linux import consts as C

# option -> (clear?, flag)
FLAGS: dict[str, tuple[bool, int]] = {
    "acl": (False, 1 << 16), "noacl": (True, 1 << 16),
    "async": (True, C.MS_SYNCHRONOUS), "sync": (False, C.MS_SYNCHRONOUS),
    "atime": (True, C.MS_NOATIME), "noatime": (False, C.MS_NOATIME),
    "bind": (False, C.MS_BIND), "rbind": (False, C.MS_BIND | C.MS_REC),
    "defaults": (False, 0),
    "dev": (True, C.MS_NODEV), "nodev": (False, C.MS_NODEV),
    "diratime": (True, C.MS_NODIRATIME), "nodiratime": (False, C.MS_NODIRATIME),
    "dirsync": (False, C.MS_DIRSYNC),
    "exec": (True, C.MS_NOEXEC), "noexec": (False, C.MS_NOEXEC),
    "iversion": (False, 1 << 23), "noiversion": (True, 1 << 23),
    "lazytime": (False, C.MS_LAZYTIME), "nolazytime": (True, C.MS_LAZYTIME),
    "loud": (True, C.MS_SILENT), "silent": (False, C.MS_SILENT),
    "mand": (False, C.MS_MANDLOCK), "nomand": (True, C.MS_MANDLOCK),
    "relatime": (False, C.MS_RELATIME), "norelatime": (True, C.MS_RELATIME),
    "remount": (False, C.MS_REMOUNT),
    "ro": (False, C.MS_RDONLY), "rw": (True, C.MS_RDONLY),
    "strictatime": (False, C.MS_STRICTATIME), "nostrictatime": (True, C.MS_STRICTATIME),
    "suid": (True, C.MS_NOSUID), "nosuid": (False, C.MS_NOSUID),
    "nosymfollow": (False, C.MS_NOSYMFOLLOW), "symfollow": (True, C.MS_NOSYMFOLLOW),
}

PROPAGATION: dict[str, int] = {
    "private": C.MS_PRIVATE, "rprivate": C.MS_PRIVATE | C.MS_REC,
    "shared": C.MS_SHARED, "rshared": C.MS_SHARED | C.MS_REC,
    "slave": C.MS_SLAVE, "rslave": C.MS_SLAVE | C.MS_REC,
    "unbindable": C.MS_UNBINDABLE, "runbindable": C.MS_UNBINDABLE | C.MS_REC,
}

# recursive mount_setattr attributes: option -> (clear?, attr)
RECURSIVE: dict[str, tuple[bool, int]] = {
    "rro": (False, C.MOUNT_ATTR_RDONLY), "rrw": (True, C.MOUNT_ATTR_RDONLY),
    "rnosuid": (False, C.MOUNT_ATTR_NOSUID), "rsuid": (True, C.MOUNT_ATTR_NOSUID),
    "rnodev": (False, C.MOUNT_ATTR_NODEV), "rdev": (True, C.MOUNT_ATTR_NODEV),
    "rnoexec": (False, C.MOUNT_ATTR_NOEXEC), "rexec": (True, C.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, C.MOUNT_ATTR_NODIRATIME), "rdiratime": (True, C.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (False, C.MOUNT_ATTR_NOSYMFOLLOW), "rsymfollow": (True, C.MOUNT_ATTR_NOSYMFOLLOW),
    # the atime family is one field: setting any member clears the others
    "rrelatime": (False, C.MOUNT_ATTR_RELATIME), "rnorelatime": (True, C.MOUNT_ATTR_RELATIME),
    "rnoatime": (False, C.MOUNT_ATTR_NOATIME), "ratime": (True, C.MOUNT_ATTR_NOATIME),
    "rstrictatime": (False, C.MOUNT_ATTR_STRICTATIME), "rnostrictatime": (True, C.MOUNT_ATTR_STRICTATIME),
}
_ATIME = {"rrelatime", "rnoatime", "rstrictatime"}

EXTENSIONS = {"idmap", "ridmap", "tmpcopyup"}


class MountOptions:
    """What one mount's option list means to the kernel."""

    __slots__ = ("flags", "propagation", "attr_set", "attr_clr", "data", "extensions")

    def __init__(self) -> None:
        self.flags = 0
        self.propagation: list[int] = []
        self.attr_set = 0
        self.attr_clr = 0
        self.data: list[str] = []
        self.extensions: set[str] = set()

    @property
    def data_str(self) -> str:
        return ",".join(self.data)


def parse(options: list[str] | None) -> MountOptions:
    out = MountOptions()
    for o in options or []:
        if o in FLAGS:
            clear, flag = FLAGS[o]
            out.flags = (out.flags & ~flag) if clear else (out.flags | flag)
        elif o in PROPAGATION:
            out.propagation.append(PROPAGATION[o])
        elif o in RECURSIVE:
            clear, attr = RECURSIVE[o]
            if o in _ATIME:
                out.attr_clr |= C.MOUNT_ATTR__ATIME
                out.attr_set = (out.attr_set & ~C.MOUNT_ATTR__ATIME) | attr
            elif clear:
                out.attr_clr |= attr
                out.attr_set &= ~attr
            else:
                out.attr_set |= attr
                out.attr_clr &= ~attr
        elif o in EXTENSIONS:
            out.extensions.add(o)
        else:
            out.data.append(o)
    return out
