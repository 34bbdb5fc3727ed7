"""The bpf(2) calls a cgroup v2 device filter needs, through ctypes.

Only the cgroup v2 device controller uses this (devices.set_v2), so ctypes is
imported only there. union bpf_attr is passed as a zero-filled buffer with the
few fields each command reads; the kernel accepts a size smaller than its own
union as long as what it does not know is zero.
"""
from __future__ import annotations

import ctypes
import os
import struct

_NR_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351, "riscv64": 280}

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

_ATTR_SIZE = 128

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def bpf(cmd: int, attr: ctypes.Array, what: str) -> int:
    nr = _NR_BPF.get(os.uname().machine)
    if nr is None:
        raise OSError(38, f"{what}: bpf(2) is not supported on {os.uname().machine}")
    ret = _syscall(ctypes.c_long(nr), ctypes.c_long(cmd), attr, ctypes.c_long(len(attr)))
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return ret


def prog_load(insns: bytes, license: str, prog_type: int = BPF_PROG_TYPE_CGROUP_DEVICE) -> int:
    """BPF_PROG_LOAD; returns the program fd. On failure the verifier's log
    is part of the error."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    # u32 prog_type, u32 insn_cnt, u64 insns, u64 license, u32 log_level, u32 log_size, u64 log_buf
    struct.pack_into("<IIQQ", attr, 0, prog_type, len(insns) // 8,
                     ctypes.addressof(code), ctypes.addressof(lic))
    try:
        return bpf(BPF_PROG_LOAD, attr, "BPF_PROG_LOAD")
    except OSError as e:
        err = e
    log = ctypes.create_string_buffer(1 << 16)
    struct.pack_into("<IIQ", attr, 24, 1, len(log), ctypes.addressof(log))
    try:
        return bpf(BPF_PROG_LOAD, attr, "BPF_PROG_LOAD")
    except OSError:
        pass
    text = log.value.decode(errors="replace").strip().replace("\n", "; ")
    raise OSError(err.errno, f"{err.strerror}" + (f" (verifier: {text[-500:]})" if text else ""))


def prog_attach(target_fd: int, prog_fd: int, attach_type: int = BPF_CGROUP_DEVICE,
                flags: int = BPF_F_ALLOW_MULTI) -> None:
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    # u32 target_fd, u32 attach_bpf_fd, u32 attach_type, u32 attach_flags
    struct.pack_into("<IIII", attr, 0, target_fd, prog_fd, attach_type, flags)
    bpf(BPF_PROG_ATTACH, attr, "failed to call BPF_PROG_ATTACH (BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)")


def prog_detach(target_fd: int, prog_fd: int, attach_type: int = BPF_CGROUP_DEVICE) -> None:
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<III", attr, 0, target_fd, prog_fd, attach_type)
    bpf(BPF_PROG_DETACH, attr, "failed to call BPF_PROG_DETACH (BPF_CGROUP_DEVICE) on old filter program")


def prog_query(target_fd: int, attach_type: int = BPF_CGROUP_DEVICE) -> list[int]:
    """Ids of the programs attached to a cgroup (BPF_PROG_QUERY)."""
    size = 64
    for _ in range(10):
        ids = (ctypes.c_uint32 * size)()
        attr = ctypes.create_string_buffer(_ATTR_SIZE)
        # u32 target_fd, u32 attach_type, u32 query_flags, u32 attach_flags, u64 prog_ids, u32 prog_cnt
        struct.pack_into("<IIIIQI", attr, 0, target_fd, attach_type, 0, 0, ctypes.addressof(ids), size)
        try:
            bpf(BPF_PROG_QUERY, attr, "bpf_prog_query(BPF_CGROUP_DEVICE) failed")
        except OSError as e:
            if e.errno == 28:  # ENOSPC: prog_cnt now holds the real count
                size = struct.unpack_from("<I", attr, 24)[0]
                continue
            raise
        cnt = struct.unpack_from("<I", attr, 24)[0]
        return list(ids[:cnt])
    raise OSError(11, "could not get complete list of CGROUP_DEVICE programs")


def prog_fd_by_id(prog_id: int) -> int:
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("<I", attr, 0, prog_id)
    return bpf(BPF_PROG_GET_FD_BY_ID, attr, "cannot fetch program from id")


def load_attach_device_filter(insns: bytes, license: str, dirfd: int) -> None:
    """Attach the new device program, then detach the ones attached before
    (runc's loadAttachCgroupDeviceFilter without BPF_F_REPLACE: during the
    switch both run, and with BPF_F_ALLOW_MULTI every program must allow)."""
    try:  # pre-5.11 kernels charge bpf memory to RLIMIT_MEMLOCK (needs CAP_SYS_RESOURCE to raise)
        import resource
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (OSError, ValueError):
        pass
    old_fds: list[int] = []
    try:
        for pid in prog_query(dirfd):
            try:
                old_fds.append(prog_fd_by_id(pid))
            except OSError as e:
                if e.errno in (1, 13):  # EPERM/EACCES: a program an LSM hides from us; runc skips it
                    continue
                raise
        prog = prog_load(insns, license)
        try:
            prog_attach(dirfd, prog)
        finally:
            os.close(prog)  # the attachment keeps the program alive
        for fd in old_fds:
            prog_detach(dirfd, fd)
    finally:
        for fd in old_fds:
            os.close(fd)
