"""Bindings for the Linux calls Python 3.11 does not expose, through
_ctypes (linux/ffi.py: ctypes itself costs ~2 ms to import).

Imported only by commands that set up or enter containers.
"""
from __future__ import annotations

import os

from . import ffi

from .consts import PROC_SUPER_MAGIC, SYSCALLS

_libc = ffi.Library(None)
_syscall = _libc.syscall
_syscall.restype = ffi.c_long


def _check(ret: int, what: str) -> int:
    if ret < 0:
        e = ffi.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return ret


def _b(s: str | bytes | None) -> bytes | None:
    if s is None or isinstance(s, bytes):
        return s
    return os.fsencode(s)


def sys_call(name: str, *args: object) -> int:
    """Raw syscall by name; raises OSError naming the call on failure."""
    nr = SYSCALLS.get(name)
    if nr is None:
        raise OSError(38, f"{name}: not supported on {os.uname().machine}")
    return _check(_syscall(ffi.c_long(nr), *args), name)


_libc.mount.argtypes = [ffi.c_char_p, ffi.c_char_p, ffi.c_char_p, ffi.c_ulong, ffi.c_char_p]
_libc.umount2.argtypes = [ffi.c_char_p, ffi.c_int]
_libc.unshare.argtypes = [ffi.c_int]
_libc.sethostname.argtypes = [ffi.c_char_p, ffi.c_size_t]
_libc.setdomainname.argtypes = [ffi.c_char_p, ffi.c_size_t]
_libc.prctl.argtypes = [ffi.c_int, ffi.c_ulong, ffi.c_ulong, ffi.c_ulong, ffi.c_ulong]


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    if _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) < 0:
        raise mount_error(ffi.get_errno(), source, target, fstype, flags)


def mount_error(e: int, source: str | None, target: str, fstype: str | None, flags: int) -> OSError:
    """mount()'s failure: the errno's text as Go prints it (lower case),
    where runc's users grep for it. (Also what a test recorder raises.)"""
    return OSError(e, f"mount {source or ''}:{target} (type {fstype or ''}, flags {flags:#x}): "
                      f"{os.strerror(e).lower()}")


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), f"umount {target}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def pivot_root(new_root: str, put_old: str) -> None:
    sys_call("pivot_root", _b(new_root), _b(put_old))


def sethostname(name: str) -> None:
    b = name.encode()
    _check(_libc.sethostname(b, len(b)), "sethostname")


def setdomainname(name: str) -> None:
    b = name.encode()
    _check(_libc.setdomainname(b, len(b)), "setdomainname")


def prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    return _check(_libc.prctl(option, a2, a3, a4, a5), f"prctl({option})")


def keyctl_join_session_keyring(name: str | None) -> int:
    return sys_call("keyctl", ffi.c_long(1), _b(name))


def keyctl_add_perm(key: int, add: int) -> None:
    """Add permission bits to a key (KEYCTL_DESCRIBE, then KEYCTL_SETPERM)."""
    buf = ffi.create_string_buffer(512)
    sys_call("keyctl", ffi.c_long(6), ffi.c_long(key), buf, ffi.c_long(len(buf)))
    perm = int(buf.value.split(b";")[3], 16)  # type;uid;gid;perm;description
    sys_call("keyctl", ffi.c_long(5), ffi.c_long(key), ffi.c_long(perm | add))


class _OpenHow(ffi.Structure):
    _fields_ = [("flags", ffi.c_uint64), ("mode", ffi.c_uint64), ("resolve", ffi.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    nr = SYSCALLS["openat2"]
    ret = _syscall(ffi.c_long(nr), dirfd, _b(path), ffi.byref(how), ffi.sizeof(how))
    if ret < 0:
        e = ffi.get_errno()
        raise OSError(e, f"openat2 {path}: {os.strerror(e)}")
    return ret


class _MountAttr(ffi.Structure):
    _fields_ = [("attr_set", ffi.c_uint64), ("attr_clr", ffi.c_uint64),
                ("propagation", ffi.c_uint64), ("userns_fd", ffi.c_uint64)]


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int, attr_clr: int = 0,
                  propagation: int = 0, userns_fd: int = 0) -> None:
    attr = _MountAttr(attr_set, attr_clr, propagation, userns_fd)
    nr = SYSCALLS["mount_setattr"]
    ret = _syscall(ffi.c_long(nr), dirfd, _b(path), flags, ffi.byref(attr), ffi.sizeof(attr))
    if ret < 0:
        e = ffi.get_errno()
        raise OSError(e, f"mount_setattr {path}: {os.strerror(e)}")


def open_tree(dirfd: int, path: str, flags: int) -> int:
    return sys_call("open_tree", dirfd, _b(path), ffi.c_uint(flags))


def move_mount(from_dirfd: int, from_path: str, to_dirfd: int, to_path: str, flags: int) -> None:
    sys_call("move_mount", from_dirfd, _b(from_path), to_dirfd, _b(to_path), ffi.c_uint(flags))


class _CapHeader(ffi.Structure):
    _fields_ = [("version", ffi.c_uint32), ("pid", ffi.c_int)]


class _CapData(ffi.Structure):
    _fields_ = [("effective", ffi.c_uint32), ("permitted", ffi.c_uint32),
                ("inheritable", ffi.c_uint32)]


_CAP_V3 = 0x20080522
# made here, at import: a ctypes array type made on first use costs a new
# class (0.2 ms), and the first capget is the init's, on every create's path
_CapData2 = _CapData * 2


def capget() -> tuple[int, int, int]:
    """(effective, permitted, inheritable) of the calling thread as 64-bit masks."""
    hdr = _CapHeader(_CAP_V3, 0)
    data = _CapData2()
    sys_call("capget", ffi.byref(hdr), data)
    return tuple((data[1].__getattribute__(f) << 32) | data[0].__getattribute__(f)
                 for f in ("effective", "permitted", "inheritable"))


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _CapHeader(_CAP_V3, 0)
    data = _CapData2()
    m = 0xFFFFFFFF
    data[0].effective, data[1].effective = effective & m, effective >> 32
    data[0].permitted, data[1].permitted = permitted & m, permitted >> 32
    data[0].inheritable, data[1].inheritable = inheritable & m, inheritable >> 32
    sys_call("capset", ffi.byref(hdr), data)


class _Rlimit(ffi.Structure):
    _fields_ = [("cur", ffi.c_uint64), ("max", ffi.c_uint64)]


def setrlimit(resource: int, soft: int, hard: int) -> None:
    """setrlimit(2) with the spec's full 64-bit values (RLIM_INFINITY included)."""
    _check(_libc.setrlimit(resource, ffi.byref(_Rlimit(soft, hard))), "setrlimit")


def prlimit(pid: int, resource: int, soft: int, hard: int) -> None:
    """prlimit(2) setting another process's limit, 64-bit values as setrlimit
    (the resource module would cost a shared-object load at every start)."""
    _check(_libc.prlimit(pid, resource, ffi.byref(_Rlimit(soft, hard)), None), "prlimit")


_libc.fstatfs.argtypes = [ffi.c_int, ffi.c_void_p]


def fstatfs_type(fd: int) -> int:
    """f_type of the file system holding fd (os.fstatvfs does not give it)."""
    buf = ffi.create_string_buffer(120)  # struct statfs; f_type is the first word
    _check(_libc.fstatfs(fd, buf), "fstatfs")
    return int.from_bytes(buf.raw[:8], "little")


def pidfd_open(pid: int) -> int:
    return sys_call("pidfd_open", pid, 0)


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    sys_call("close_range", ffi.c_uint(first), ffi.c_uint(last), ffi.c_uint(flags))


# --- process attributes (security/attrs.py) --------------------------------

_libc.personality.argtypes = [ffi.c_ulong]
_libc.personality.restype = ffi.c_int


def personality(persona: int) -> int:
    """personality(2); returns the previous persona (0xffffffff only queries)."""
    return _check(_libc.personality(persona), "set_personality")


class _SchedAttr(ffi.Structure):
    _fields_ = [("size", ffi.c_uint32), ("sched_policy", ffi.c_uint32),
                ("sched_flags", ffi.c_uint64), ("sched_nice", ffi.c_int32),
                ("sched_priority", ffi.c_uint32), ("sched_runtime", ffi.c_uint64),
                ("sched_deadline", ffi.c_uint64), ("sched_period", ffi.c_uint64),
                ("sched_util_min", ffi.c_uint32), ("sched_util_max", ffi.c_uint32)]


def sched_setattr(pid: int, policy: int, flags: int = 0, nice: int = 0, priority: int = 0,
                  runtime: int = 0, deadline: int = 0, period: int = 0) -> None:
    """sched_setattr(2) with struct sched_attr (SCHED_ATTR_SIZE_VER1, 56 bytes)."""
    attr = _SchedAttr(ffi.sizeof(_SchedAttr), policy, flags, nice, priority, runtime, deadline, period, 0, 0)
    sys_call("sched_setattr", pid, ffi.byref(attr), ffi.c_uint(0))


def sched_getattr(pid: int = 0) -> dict:
    attr = _SchedAttr()
    sys_call("sched_getattr", pid, ffi.byref(attr), ffi.c_uint(ffi.sizeof(attr)), ffi.c_uint(0))
    return {"policy": attr.sched_policy, "flags": attr.sched_flags, "nice": attr.sched_nice,
            "priority": attr.sched_priority, "runtime": attr.sched_runtime,
            "deadline": attr.sched_deadline, "period": attr.sched_period}


def ioprio_set(which: int, who: int, ioprio: int) -> None:
    sys_call("ioprio_set", which, who, ioprio)


def ioprio_get(which: int, who: int) -> int:
    return sys_call("ioprio_get", which, who)


def set_mempolicy(mode: int, nodes: bytes | None) -> None:
    """set_mempolicy(2) for the calling thread; `nodes` is a little-endian
    nodemask (None: no mask). maxnode is the mask's bit count plus one: the
    kernel reads maxnode - 1 bits."""
    if nodes is None:
        sys_call("set_mempolicy", mode, None, ffi.c_ulong(0))
    else:
        sys_call("set_mempolicy", mode, nodes, ffi.c_ulong(len(nodes) * 8 + 1))


def get_mempolicy() -> int:
    """The calling thread's mode (with its mode flags), for tests."""
    mode = ffi.c_int(0)
    sys_call("get_mempolicy", ffi.byref(mode), None, ffi.c_ulong(0), None, ffi.c_ulong(0))
    return mode.value


_libc.sched_setaffinity.argtypes = [ffi.c_int, ffi.c_size_t, ffi.c_char_p]


def sched_setaffinity_mask(pid: int, mask: bytes) -> None:
    """sched_setaffinity(2) with a raw little-endian cpumask: a mask longer than
    the kernel's is clamped by the kernel (so b"\\xff" * 8192 means every
    possible CPU, as runc's tryResetCPUAffinity) and cpuset-masked."""
    _check(_libc.sched_setaffinity(pid, len(mask), mask), "sched_setaffinity")


_libc.memset.argtypes = [ffi.c_void_p, ffi.c_int, ffi.c_size_t]
_libc.memcpy.argtypes = [ffi.c_void_p, ffi.c_char_p, ffi.c_size_t]


def overwrite_memory(addr: int, size: int, data: bytes = b"") -> None:
    """Write `data` at `addr` and zeroes after it, `size` bytes in all: for
    the argument and environment areas of this process, which Python copied
    at start-up and no longer reads."""
    data = data[:size]
    _libc.memset(addr, 0, size)
    if data:
        _libc.memcpy(addr, data, len(data))


# --- the seam of rootfs and init ---------------------------------------------


class Syscalls:
    """Every call that changes the container's mount tree, root or device
    nodes, as rootfs/ and init/ make them: `sc.mount(...)`, never
    `mount(...)` or `os.chroot(...)` there. Unit tests swap the one instance,
    `sc`, for a recorder (tests/unit/syscall_recorder.py) and check the
    order and arguments of these calls without a kernel or root.

    The attributes are the plain functions, so a call costs one attribute
    lookup more than calling the function itself, and nothing is imported
    for it. Plain file operations (open, mkdir, symlink, unlink, stat) and
    the path resolution inside the rootfs (openat2) are not here: tests run
    them for real on a temporary directory."""

    mount = staticmethod(mount)
    umount2 = staticmethod(umount2)
    pivot_root = staticmethod(pivot_root)
    open_tree = staticmethod(open_tree)
    move_mount = staticmethod(move_mount)
    mount_setattr = staticmethod(mount_setattr)
    unshare = staticmethod(unshare)
    chdir = staticmethod(os.chdir)
    fchdir = staticmethod(os.fchdir)
    chroot = staticmethod(os.chroot)
    mknod = staticmethod(os.mknod)
    chown = staticmethod(os.chown)


sc = Syscalls()


# --- helpers of the container's processes (security/, init/) --------------

def open_procfs(path: str, flags: int = os.O_WRONLY) -> int:
    """Open a /proc file for writing only if it really is procfs: a config
    can mount something else over /proc/sys (CVE-2025-52881's class)."""
    fd = os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW)
    if fstatfs_type(fd) != PROC_SUPER_MAGIC:
        os.close(fd)
        from ..errors import PyruncError
        raise PyruncError(f"{path} is not on procfs: refusing to write to it")
    return fd


def id_map_text(maps: list[dict]) -> bytes:
    """uid_map/gid_map contents: one "inside outside count" line per range."""
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps).encode()


def reset_signals() -> None:
    """Python ignores SIGPIPE and handles SIGINT; the user's process must start
    with default dispositions and an empty signal mask."""
    import _signal  # not signal: its enums cost an import
    for s in range(1, _signal.NSIG):
        try:
            if _signal.getsignal(s) not in (_signal.SIG_DFL, None):
                _signal.signal(s, _signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
