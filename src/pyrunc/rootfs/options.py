"""Mount options from config.json to mount(2) flags, as runc parses them.

Pure logic, unit-tested: each option either sets or clears a flag, sets a
propagation type, sets or clears a recursive mount_setattr attribute, or is
passed to the kernel as filesystem data.
"""
from __future__ import annotations

from ..linux import consts as C

# option -> (clear?, flag)
# ("acl" is filesystem data, as in runc: it cannot be mapped to MS_POSIXACL)
FLAGS: dict[str, tuple[bool, int]] = {
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

    __slots__ = ("flags", "cleared", "propagation", "attr_set", "attr_clr", "data", "extensions")

    def __init__(self) -> None:
        self.flags = 0
        self.cleared = 0  # flags an option explicitly clears ("rw", "dev", "atime"...)
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
            if clear:
                out.flags &= ~flag
                out.cleared |= flag
            else:
                out.flags |= flag
                out.cleared &= ~flag
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
                if attr & C.MOUNT_ATTR__ATIME == attr:  # "ratime", "rnostrictatime"...: the
                    out.attr_clr |= C.MOUNT_ATTR__ATIME  # kernel takes the whole field or EINVAL
            else:
                out.attr_set |= attr
                out.attr_clr &= ~attr
        elif o in EXTENSIONS:
            out.extensions.add(o)
        else:
            out.data.append(o)
    return out


# -- bind remounts: flags a mount in another user namespace keeps (MNT_LOCK_*) --------
ATIME_ENUM = C.MS_NOATIME | C.MS_RELATIME | C.MS_STRICTATIME
ATIME_ALL = ATIME_ENUM | C.MS_NODIRATIME
LOCKABLE = C.MS_RDONLY | C.MS_NODEV | C.MS_NOEXEC | C.MS_NOSUID | ATIME_ALL

# statfs f_flags bit -> mount flag (calculate_f_flags() in fs/statfs.c)
_ST_TO_MS = ((1, C.MS_RDONLY), (2, C.MS_NOSUID), (4, C.MS_NODEV), (8, C.MS_NOEXEC),
             (64, C.MS_MANDLOCK), (16, C.MS_SYNCHRONOUS), (1024, C.MS_NOATIME),
             (2048, C.MS_NODIRATIME), (4096, C.MS_RELATIME), (0x2000, C.MS_NOSYMFOLLOW))


def statfs_to_mount_flags(f_flag: int) -> int:
    """A mount's flags from statfs: no atime flag in the enum means
    strictatime (MS_STRICTATIME is not stored, so statfs never shows it)."""
    flags = 0
    for st, ms in _ST_TO_MS:
        if f_flag & st:
            flags |= ms
    if not flags & ATIME_ENUM:
        flags |= C.MS_STRICTATIME
    return flags


_NAMES = (("MS_RDONLY", C.MS_RDONLY), ("MS_NOSUID", C.MS_NOSUID), ("MS_NODEV", C.MS_NODEV),
          ("MS_NOEXEC", C.MS_NOEXEC), ("MS_SYNCHRONOUS", C.MS_SYNCHRONOUS), ("MS_REMOUNT", C.MS_REMOUNT),
          ("MS_MANDLOCK", C.MS_MANDLOCK), ("MS_DIRSYNC", C.MS_DIRSYNC), ("MS_NOSYMFOLLOW", C.MS_NOSYMFOLLOW),
          ("MS_NOATIME", C.MS_NOATIME), ("MS_NODIRATIME", C.MS_NODIRATIME), ("MS_BIND", C.MS_BIND),
          ("MS_REC", C.MS_REC), ("MS_RELATIME", C.MS_RELATIME), ("MS_STRICTATIME", C.MS_STRICTATIME))


def flag_names(flags: int) -> str:
    """"MS_RDONLY|MS_NODEV", as runc's stringifyMountFlags writes them."""
    names = [n for n, bit in _NAMES if flags & bit]
    rest = flags & ~sum(bit for _, bit in _NAMES)
    return "|".join(names + ([hex(rest)] if rest else []))


def is_idmapped(m: dict) -> bool:
    """runc: "idmap"/"ridmap", or a mount's own mappings without either.
    (Here rather than in idmap.py, which the init imports only for such a
    mount.)"""
    return (bool(set(m.get("options") or []) & {"idmap", "ridmap"})
            or m.get("uidMappings") is not None or m.get("gidMappings") is not None)
