"""--pidfd-socket (runc 1.2+): the runtime sends a pidfd of the container's
process over a unix socket, with runc's payload ("standard" for the init,
"setns" for an exec'd process)."""
from __future__ import annotations

import ctypes
import os
import threading

import pytest

from helpers_console import ConsoleReceiver

pytestmark = pytest.mark.runc_ref_differs(reason="runc 1.1.5 has no --pidfd-socket")

_libc = ctypes.CDLL(None, use_errno=True)


def _pidfd_send_signal(pidfd: int, sig: int) -> None:
    if _libc.syscall(424, pidfd, sig, None, 0) != 0:
        raise OSError(ctypes.get_errno(), "pidfd_send_signal")


def _receive(path):
    recv = ConsoleReceiver(path)
    got = {}
    t = threading.Thread(target=lambda: got.update(fd=recv.accept()), daemon=True)
    t.start()
    return recv, t, got


def test_create_sends_init_pidfd(rt, bundle, tmp_path, leakcheck):
    bundle.set_args("sleep", "3600")
    recv, t, got = _receive(tmp_path / "pidfd.sock")
    cid = rt.new_id()
    rt.create(cid, bundle, "--pidfd-socket", recv.path)
    t.join(10)
    fd = got["fd"]
    try:
        assert recv.name == "standard"
        assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[pidfd]"
        pid = rt.state(cid)["pid"]
        with open(f"/proc/self/fdinfo/{fd}") as f:
            assert f"Pid:\t{pid}" in f.read()
        _pidfd_send_signal(fd, 9)  # the fd really controls the container's init
        rt.wait_status(cid, "stopped")
    finally:
        recv.close()  # closes the received fd too
    rt.ok("delete", cid)


def test_exec_sends_setns_pidfd(rt, bundle, tmp_path):
    bundle.set_args("sleep", "3600")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    recv, t, got = _receive(tmp_path / "pidfd.sock")
    rt.ok("exec", "-d", "--pidfd-socket", recv.path, cid, "sleep", "3600")
    t.join(10)
    try:
        assert recv.name == "setns"
        assert os.readlink(f"/proc/self/fd/{got['fd']}") == "anon_inode:[pidfd]"
    finally:
        recv.close()
    rt.ok("delete", "--force", cid)


def test_bad_pidfd_socket_leaves_nothing(rt, bundle, tmp_path, leakcheck):
    bundle.set_args("true")
    cid = rt.new_id()
    rt.fail("create", "--bundle", bundle.path, "--pidfd-socket", tmp_path / "missing.sock", cid,
            match="pidfd socket", one_line=True)
    rt.fail("state", cid, match="does not exist")
    leakcheck.assert_clean()


def test_exec_pidfd_into_sub_cgroup(rt, bundle, tmp_path):
    """pidfd-socket.bats "runc exec [ --pidfd-socket ] [cgroups_v1/v2]": an
    exec'd process in a sub-cgroup (--cgroup), killed through the pidfd."""
    import time
    from test_cgroups_common import cgroup_dir, unified_host
    bundle.set_args("sleep", "3600")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    sub = cgroup_dir(rt.state(cid)["pid"], "pids") / "exec_pidfd"
    sub.mkdir()
    recv, t, got = _receive(tmp_path / "pidfd.sock")
    pidfile = tmp_path / "exec.pid"
    where = "exec_pidfd" if unified_host() else "pids:exec_pidfd"
    rt.ok("exec", "-d", "--cgroup", where, "--pid-file", pidfile, "--pidfd-socket", recv.path, cid, "sleep", "3600")
    t.join(10)
    try:
        pid = int(pidfile.read_text())
        assert (sub / "cgroup.procs").read_text().split() == [str(pid)]
        _pidfd_send_signal(got["fd"], 9)
    finally:
        recv.close()
    for _ in range(100):  # the process is gone once its sub-cgroup can go
        try:
            sub.rmdir()
            break
        except OSError:
            time.sleep(0.05)
    assert not sub.exists()
    assert rt.status(cid) == "running"
    rt.ok("delete", "--force", cid)
