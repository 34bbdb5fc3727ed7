"""The cgroup v2 device filter for real: pyrunc's BPF_PROG_TYPE_CGROUP_DEVICE
program loaded with bpf(2) and attached (BPF_F_ALLOW_MULTI) to a cgroup of
the unified hierarchy, then a process moved into that cgroup is refused the
devices the rules deny.

On a hybrid host the unified hierarchy lists no device controller, but cgroup
bpf programs attach to any v2 cgroup, and the kernel runs them for every
device access of the cgroup's processes (before the v1 devices controller).
"""
from __future__ import annotations

import errno
import os
import secrets

import pytest

from pyrunc.cgroups import devices as D


def _unified_root() -> str | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            if post.split()[0] == "cgroup2":
                mp = pre.split()[4]
                if mp.startswith("/sys/fs/cgroup"):
                    return mp
    return None


@pytest.fixture
def v2_cgroup():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    root = _unified_root()
    if root is None:
        pytest.skip("no cgroup2 mount")
    with open("/proc/self/cgroup") as f:
        own = next(ln.split(":", 2)[2].strip() for ln in f if ln.startswith("0::"))
    path = os.path.join(root, own.lstrip("/"), f"pyrunc-ebpf-{secrets.token_hex(3)}")
    os.mkdir(path)
    try:
        yield path
    finally:
        for _ in range(100):
            try:
                os.rmdir(path)
                break
            except OSError as e:
                if e.errno != errno.EBUSY:
                    raise
                import time
                time.sleep(0.02)


def probe(cgroup: str, paths: list[str]) -> dict[str, int]:
    """Open each path from a child moved into the cgroup: 0 or the errno."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            res = []
            for p in paths:
                try:
                    os.close(os.open(p, os.O_RDONLY))
                    res.append("0")
                except OSError as e:
                    res.append(str(e.errno))
            os.write(w, ",".join(res).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return dict(zip(paths, (int(x) for x in data.decode().split(","))))


def attached(cgroup: str) -> list[int]:
    from pyrunc.cgroups import ebpf
    fd = os.open(cgroup, os.O_DIRECTORY | os.O_RDONLY)
    try:
        return ebpf.prog_query(fd)
    finally:
        os.close(fd)


def test_device_filter_blocks_denied_devices(v2_cgroup):
    assert probe(v2_cgroup, ["/dev/null", "/dev/zero"]) == {"/dev/null": 0, "/dev/zero": 0}
    # deny all, allow /dev/zero only (no default rules)
    D.set_v2(v2_cgroup, [("a", -1, -1, "rwm", False), ("c", 1, 5, "rwm", True)])
    assert len(attached(v2_cgroup)) == 1
    got = probe(v2_cgroup, ["/dev/null", "/dev/zero"])
    assert got == {"/dev/null": errno.EPERM, "/dev/zero": 0}


def test_default_rules_allow_the_standard_devices(v2_cgroup, tmp_path):
    D.set_v2(v2_cgroup, D.spec_rules({"devices": [{"allow": False, "access": "rwm"}]}))
    os.mknod(tmp_path / "mem", 0o600 | 0o020000, os.makedev(1, 1))  # /dev/mem: not in the allow list
    got = probe(v2_cgroup, ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/full", str(tmp_path / "mem")])
    assert got == {"/dev/null": 0, "/dev/zero": 0, "/dev/urandom": 0, "/dev/full": 0,
                   str(tmp_path / "mem"): errno.EPERM}


def test_read_only_rule(v2_cgroup, tmp_path):
    D.set_v2(v2_cgroup, [("a", -1, -1, "rwm", False), ("c", 1, 3, "r", True)])
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            with open(os.path.join(v2_cgroup, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            out = []
            for flags in (os.O_RDONLY, os.O_WRONLY):
                try:
                    os.close(os.open("/dev/null", flags))
                    out.append("0")
                except OSError as e:
                    out.append(str(e.errno))
            os.write(w, ",".join(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    res = os.read(r, 100).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert res == f"0,{errno.EPERM}"


def test_reapplying_replaces_the_program(v2_cgroup):
    D.set_v2(v2_cgroup, [("a", -1, -1, "rwm", False), ("c", 1, 5, "rwm", True)])
    first = attached(v2_cgroup)
    D.set_v2(v2_cgroup, [("a", -1, -1, "rwm", False), ("c", 1, 3, "rwm", True)])
    second = attached(v2_cgroup)
    assert len(second) == 1 and second != first
    assert probe(v2_cgroup, ["/dev/null", "/dev/zero"]) == {"/dev/null": 0, "/dev/zero": errno.EPERM}


def test_allow_all_program(v2_cgroup):
    D.set_v2(v2_cgroup, [("a", -1, -1, "rwm", True)])
    assert probe(v2_cgroup, ["/dev/null", "/dev/zero"]) == {"/dev/null": 0, "/dev/zero": 0}
