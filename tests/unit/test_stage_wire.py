"""init/child.py InitArgs.wire and security/seccomp.py Seccomp.wire: what the
runtime parent sends the pre-forked stage child (marshal, fds by index), and
linux/ffi.py, the _ctypes layer under linux/sys.py."""
from __future__ import annotations

import os

import pytest

from pyrunc.init.child import InitArgs
from pyrunc.linux import ffi
from pyrunc.security import seccomp as S

SPEC = {"ociVersion": "1.2.0", "process": {"args": ["/bin/true"], "cwd": "/"},
        "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "mount"}]}}


def _args(**kw) -> InitArgs:
    base = dict(spec=SPEC, rootfs="/b/rootfs", bundle="/b", mode="run", fifo_fd=-1, no_pivot=False,
                no_new_keyring=True, preserve_fds=2, terminal=False, cid="c1", state_json="{}",
                cgroup_mounts=[("memory", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/memory/c1")],
                hold_fd=-1)
    base.update(kw)
    return InitArgs(**base)


def test_round_trip_keeps_every_field():
    a = _args()
    payload, fds = a.wire()
    assert fds == []
    b = InitArgs.from_wire(payload, fds)
    for k in InitArgs.__slots__:
        assert getattr(b, k) == getattr(a, k), k
    assert b.cgroup_mounts[0] == ("memory", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/memory/c1")


def test_fds_travel_as_indexes():
    a = _args(fifo_fd=17)
    payload, fds = a.wire()
    assert fds == [17]
    b = InitArgs.from_wire(payload, [105])  # the number it got on arrival
    assert b.fifo_fd == 105
    payload, fds = _args().wire()
    assert fds == []
    assert InitArgs.from_wire(payload, []).fifo_fd == -1


def test_seccomp_profile_round_trip():
    spec = dict(SPEC, linux={"namespaces": [{"type": "mount"}], "seccomp": {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                     {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}})
    try:
        sc = S.prepare(spec, cid="c1", bundle="/b", oci_version="1.2.0")
    except Exception as e:  # no libseccomp: nothing to compare
        pytest.skip(f"libseccomp: {e}")
    b = InitArgs.from_wire(*_args(spec=spec, seccomp=sc).wire())
    got, want = b.seccomp, sc
    assert (got.state, got.nr_seccomp, got.listener_path) == (want.state, want.nr_seccomp, want.listener_path)
    gp, wp = got.profile, want.profile
    assert (gp.default, gp.default_errno, gp.archs, gp.flags) == (wp.default, wp.default_errno, wp.archs, wp.flags)
    assert [repr(r) for r in gp.rules] == [repr(r) for r in wp.rules]


def test_ffi_types_match_the_c_sizes():
    assert [ffi.sizeof(t) for t in (ffi.c_int, ffi.c_uint, ffi.c_long, ffi.c_uint64)] == [4, 4, 8, 8]
    buf = ffi.create_string_buffer(16)
    assert buf.raw == b"\0" * 16 and ffi.sizeof(buf) == 16


def test_ffi_calls_libc_and_keeps_errno():
    libc = ffi.Library(None)
    assert libc.getpid() == os.getpid()
    libc.close.argtypes = [ffi.c_int]
    assert libc.close(-1) == -1
    assert ffi.get_errno() == 9  # EBADF
