"""ctypes binding to libseccomp, and the kernel side of seccomp.

This is the only module that loads libseccomp (`libseccomp.so.2`, through
ctypes, as runc and crun link it). It is imported only when a config has
`linux.seccomp`, and the library is opened on first use by `lib()`: in the
runtime parent, before any fork, so the children inherit it. A process whose
root has become the container's must never open it: a dlopen there would load
the container's copy of the library.

Two halves:

* `Filter`: a libseccomp filter context (seccomp_init, arch_add, attr_set,
  rule_add_array) and `export_bpf()`, the generated classic BPF program as
  bytes. Used by the parent only.
* `Program`: a BPF program ready for the kernel, and `Program.load()`, one
  prctl(PR_SET_SECCOMP) or seccomp(SECCOMP_SET_MODE_FILTER) call. It goes
  through libc, never libseccomp, so it is safe in the container's init after
  pivot_root and right before execve. runc loads its (patched) program the
  same way (libcontainer/seccomp/patchbpf).
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os

# --- libseccomp's seccomp.h (stable ABI since 2.x) ---------------------------

# actions
ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_KILL = ACT_KILL_THREAD
ACT_TRAP = 0x00030000
ACT_NOTIFY = 0x7FC00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000


def ACT_ERRNO(code: int) -> int:  # noqa: N802 - the C macro's name
    return 0x00050000 | (code & 0xFFFF)


def ACT_TRACE(code: int) -> int:  # noqa: N802
    return 0x7FF00000 | (code & 0xFFFF)


# enum scmp_compare
CMP_NE, CMP_LT, CMP_LE, CMP_EQ, CMP_GE, CMP_GT, CMP_MASKED_EQ = range(1, 8)

# enum scmp_filter_attr
ATTR_ACT_DEFAULT = 1
ATTR_ACT_BADARCH = 2
ATTR_CTL_NNP = 3
ATTR_CTL_TSYNC = 4
ATTR_API_TSKIP = 5
ATTR_CTL_LOG = 6
ATTR_CTL_SSB = 7
ATTR_CTL_OPTIMIZE = 8
ATTR_API_SYSRAWRC = 9
ATTR_CTL_WAITKILL = 10  # libseccomp >= 2.6

NR_SCMP_ERROR = -1  # seccomp_syscall_resolve_name*: unknown name

# --- the kernel's linux/seccomp.h --------------------------------------------

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1
FILTER_FLAG_TSYNC = 1 << 0
FILTER_FLAG_LOG = 1 << 1
FILTER_FLAG_SPEC_ALLOW = 1 << 2
FILTER_FLAG_NEW_LISTENER = 1 << 3
FILTER_FLAG_TSYNC_ESRCH = 1 << 4
FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5
BPF_MAXINSNS = 4096
SOCK_FILTER_SIZE = 8  # struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}


class ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp"""
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


class SockFprog(ctypes.Structure):
    """struct sock_fprog"""
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_lib = None


def lib():
    """libseccomp.so.2, opened once (OSError if it is missing or too old)."""
    global _lib
    if _lib is not None:
        return _lib
    try:
        lb = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    except OSError as e:
        raise OSError(_errno.ENOENT, f"libseccomp.so.2 cannot be loaded: {e}") from None
    vp, u32, ci, cp = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_char_p
    for name, res, args in (
        ("seccomp_version", ctypes.POINTER(_Version), []),
        ("seccomp_init", vp, [u32]),
        ("seccomp_release", None, [vp]),
        ("seccomp_arch_add", ci, [vp, u32]),
        ("seccomp_arch_native", u32, []),
        ("seccomp_arch_resolve_name", u32, [cp]),
        ("seccomp_attr_set", ci, [vp, ci, u32]),
        ("seccomp_syscall_resolve_name", ci, [cp]),
        ("seccomp_syscall_resolve_name_arch", ci, [u32, cp]),
        ("seccomp_rule_add_array", ci, [vp, u32, ci, ctypes.c_uint, ctypes.POINTER(ArgCmp)]),
        ("seccomp_export_bpf", ci, [vp, ci]),
    ):
        try:
            f = getattr(lb, name)
        except AttributeError:
            raise OSError(_errno.ENOSYS, f"libseccomp.so.2 has no {name}: too old") from None
        f.restype = res
        f.argtypes = args
    get_api = getattr(lb, "seccomp_api_get", None)  # libseccomp >= 2.4
    if get_api is not None:
        get_api.restype = ctypes.c_uint
        get_api.argtypes = []
    _lib = lb
    return lb


def version() -> tuple[int, int, int]:
    v = lib().seccomp_version().contents
    return (v.major, v.minor, v.micro)


def api_level() -> int:
    """seccomp_api_get(): what this libseccomp and kernel support (0 before 2.4)."""
    f = getattr(lib(), "seccomp_api_get", None)
    return int(f()) if f is not None else 0


def arch_native() -> int:
    return int(lib().seccomp_arch_native())


def arch_resolve(name: str) -> int:
    """libseccomp's arch token for its name ("x86_64", "x32", ...); 0 if unknown."""
    return int(lib().seccomp_arch_resolve_name(name.encode()))


def syscall_resolve(name: str, arch: int | None = None) -> int:
    """The syscall number for `name` on the native arch (or `arch`): negative
    pseudo numbers for calls this arch lacks, NR_SCMP_ERROR for unknown names."""
    b = name.encode()
    if arch is None:
        return int(lib().seccomp_syscall_resolve_name(b))
    return int(lib().seccomp_syscall_resolve_name_arch(arch, b))


def _rc(rc: int, what: str) -> None:
    if rc < 0:
        raise OSError(-rc, f"{what}: {os.strerror(-rc)}")


class Filter:
    """A libseccomp filter context (scmp_filter_ctx)."""

    def __init__(self, default_action: int) -> None:
        self._lib = lib()
        self.ctx = self._lib.seccomp_init(default_action)
        if not self.ctx:
            raise OSError(_errno.EINVAL, f"seccomp_init({default_action:#x}) failed")

    def release(self) -> None:
        if self.ctx:
            self._lib.seccomp_release(self.ctx)
            self.ctx = None

    def __enter__(self) -> Filter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def arch_add(self, token: int) -> None:
        """Add an architecture; one already in the filter is not an error."""
        rc = self._lib.seccomp_arch_add(self.ctx, token)
        if rc != -_errno.EEXIST:
            _rc(rc, "seccomp_arch_add")

    def attr_set(self, attr: int, value: int) -> None:
        _rc(self._lib.seccomp_attr_set(self.ctx, attr, value), f"seccomp_attr_set({attr})")

    def rule_add(self, action: int, nr: int, conds: list[tuple[int, int, int, int]] | tuple = ()) -> None:
        """seccomp_rule_add_array; conds are (arg index, op, datum_a, datum_b)."""
        n = len(conds)
        arr = (ArgCmp * n)(*(ArgCmp(i, op, a & 0xFFFFFFFFFFFFFFFF, b & 0xFFFFFFFFFFFFFFFF)
                             for i, op, a, b in conds)) if n else None
        rc = self._lib.seccomp_rule_add_array(self.ctx, action, nr, n, arr)
        if rc < 0:
            raise OSError(-rc, os.strerror(-rc))

    def export_bpf(self) -> bytes:
        """The filter as a classic BPF program (host byte order), via a memfd."""
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            _rc(self._lib.seccomp_export_bpf(self.ctx, fd), "seccomp_export_bpf")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)


# --- loading a program into the kernel (no libseccomp) ------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl
_prctl.restype = ctypes.c_int
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class Program:
    """A classic BPF program in memory that the kernel can take as it is.

    Built in the parent; `load()` is one system call and touches nothing but
    memory prepared here, so it works after pivot_root with imports sealed."""

    __slots__ = ("buf", "fprog", "nr_seccomp", "ninsns")

    def __init__(self, code: bytes, nr_seccomp: int) -> None:
        n = len(code) // SOCK_FILTER_SIZE
        if n == 0 or len(code) % SOCK_FILTER_SIZE:
            raise ValueError("empty or truncated BPF program")
        if n > BPF_MAXINSNS:
            raise ValueError(f"BPF program too long: {n} instructions, the kernel takes {BPF_MAXINSNS}")
        self.ninsns = n
        self.buf = ctypes.create_string_buffer(code, len(code))
        self.fprog = SockFprog(n, ctypes.addressof(self.buf))
        self.nr_seccomp = nr_seccomp

    def load(self, flags: int) -> int:
        """Install the filter on the calling thread. Returns the listener fd
        with FILTER_FLAG_NEW_LISTENER, else -1. Without flags it uses
        prctl(PR_SET_SECCOMP), as runc does, which older kernels know too."""
        if flags == 0:
            rc = _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(self.fprog), 0, 0)
        else:
            rc = _syscall(ctypes.c_long(self.nr_seccomp), ctypes.c_long(SECCOMP_SET_MODE_FILTER),
                          ctypes.c_ulong(flags), ctypes.c_void_p(ctypes.addressof(self.fprog)))
        if rc < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return int(rc) if flags & FILTER_FLAG_NEW_LISTENER else -1
