"""The library's early stage child (init/child.py: early_namespaces): which
configs it serves, the undo's look for an init pid not yet read, and the
parent's side of its fork (init/stage.py): the pid namespace made for this
thread's next child only, and the child started beside us."""
from __future__ import annotations

import os
import socket

import pytest

from pyrunc.container.launch import _reported_init_pid
from pyrunc.init.child import can_start_early, waits_at_hooks
from pyrunc.init.stage import enter_pid_ns_for_children, leave_pid_ns_for_children, run_beside
from pyrunc.init.sync import Channel, Msg

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_SYS_ADMIN)")


@pytest.mark.parametrize("nss, ok", [
    ({}, True),
    ({"pid": "", "network": "", "ipc": "", "uts": "", "mount": ""}, True),
    ({"pid": "", "mount": "", "cgroup": ""}, True),
    ({"pid": "", "user": ""}, False),                    # the parent writes the maps
    ({"pid": "", "time": ""}, False),                    # the parent writes the offsets
    ({"pid": "", "network": "/proc/1/ns/net"}, False),   # joined by path
    ({"user": "/proc/1/ns/user"}, False),
])
def test_can_start_early(nss, ok):
    assert can_start_early(nss) is ok


@pytest.mark.parametrize("hooks, waits", [
    ({}, False),
    ({"prestart": []}, False),  # an empty list is no hook
    ({"poststart": [{"path": "/x"}], "poststop": [{"path": "/x"}], "startContainer": [{"path": "/x"}]}, False),
    ({"prestart": [{"path": "/x"}]}, True),
    ({"createRuntime": [{"path": "/x"}]}, True),
    ({"createContainer": [{"path": "/x"}]}, True),
])
def test_the_init_waits_at_hooks_only_for_hooks_that_follow_them(hooks, waits):
    """The init runs on past its HOOKS message (the resources written
    meanwhile) unless a hook must come after the parent's procHooks work."""
    assert waits_at_hooks(hooks) is waits


def _pair() -> tuple[Channel, Channel]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return Channel(a), Channel(b)


def test_reported_init_pid_reads_a_pending_pid_and_closes_passed_fds():
    parent, child = _pair()
    r, w = os.pipe()
    try:
        before = set(os.listdir("/proc/self/fd"))
        child.send(Msg.CONSOLE, fds=[r])
        child.send(Msg.INIT_PID, "4242")
        assert _reported_init_pid(parent, 77) == 4242
        assert parent.sock.getblocking()  # as it was
        # the fd that came with the message before it is closed, not kept
        assert set(os.listdir("/proc/self/fd")) == before
    finally:
        os.close(r)
        os.close(w)
        parent.close()
        child.close()


def test_reported_init_pid_does_not_wait():
    parent, child = _pair()
    try:
        assert _reported_init_pid(parent, 77) == 0  # nothing sent: no block
        child.close()
        assert _reported_init_pid(parent, 77) == 0  # EOF
    finally:
        parent.close()


def test_reported_init_pid_zero_is_the_stage_child_itself():
    """"0": the stage child is the init (no pid namespace, or the parent
    forked it into the new one): its pid is the stage child's."""
    parent, child = _pair()
    try:
        child.send(Msg.INIT_PID, "0")
        assert _reported_init_pid(parent, 77) == 77
    finally:
        parent.close()
        child.close()


@needs_root
def test_pid_namespace_for_the_next_child_only():
    """After enter: the next child is PID 1 of a new pid namespace, we stay
    in ours; after leave: children are in ours again."""
    ours = os.readlink("/proc/self/ns/pid")
    own = enter_pid_ns_for_children()
    assert own >= 0
    try:
        assert os.readlink("/proc/thread-self/ns/pid") == ours
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(w, str(os.getpid()).encode())
            os._exit(0)
        # (the link reads only once the namespace has a process)
        assert os.readlink("/proc/thread-self/ns/pid_for_children") != ours
    finally:
        leave_pid_ns_for_children(own)
    os.close(w)
    assert os.read(r, 16) == b"1"
    os.close(r)
    os.waitpid(pid, 0)
    assert os.readlink("/proc/thread-self/ns/pid_for_children") == ours
    with pytest.raises(OSError):
        os.fstat(own)  # closed


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_run_beside_leaves_out_our_cpu():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.read(r, 1)
        os._exit(0)
    try:
        with open("/proc/thread-self/stat", "rb") as f:
            here = int(f.read().rsplit(b")", 1)[1].split()[36])
        run_beside(pid)
        mask = os.sched_getaffinity(pid)
        # we may have moved between our read and its: the mask is every CPU
        # we may use but one
        assert mask and len(mask) == len(os.sched_getaffinity(0)) - 1 and mask < os.sched_getaffinity(0)
        assert here not in mask or len(mask) > 1
    finally:
        os.write(w, b"x")
        os.waitpid(pid, 0)
        os.close(r)
        os.close(w)


def test_run_beside_ignores_a_gone_child():
    run_beside(2 ** 22 + 12345)  # no such process: nothing raised


def _in_child(fn) -> str:
    """fn()'s string result, run in a forked child (namespace changes stay there)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            out = fn()
        except BaseException as e:  # noqa: BLE001 - reported to the test
            out = f"error: {e!r}"
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    try:
        return os.read(r, 4096).decode()
    finally:
        os.close(r)
        os.waitpid(pid, 0)


@needs_root
def test_pid_namespace_of_the_callers_own_is_left_alone():
    """A caller whose thread forks into a pid namespace of its own already
    (with a process in it, or none yet): the kernel refuses a second
    unshare there, so -1 (the stage child does the work) and the thread's
    children stay in the caller's namespace."""
    from pyrunc.linux import consts as LC, sys as L

    def with_process() -> str:
        L.unshare(LC.CLONE_NEWPID)
        pid = os.fork()  # the namespace's first process
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        theirs = os.readlink("/proc/thread-self/ns/pid_for_children")
        got = enter_pid_ns_for_children()
        same = os.readlink("/proc/thread-self/ns/pid_for_children") == theirs
        return f"{got} {same}"

    def without() -> str:
        L.unshare(LC.CLONE_NEWPID)
        return str(enter_pid_ns_for_children())

    assert _in_child(with_process) == "-1 True"
    assert _in_child(without) == "-1"


@needs_root
def test_a_failed_fork_leaves_nothing_changed(monkeypatch):
    """fork fails (EAGAIN): the collector is not left frozen, the thread's
    children are in our pid namespace again, and no fd of the attempt stays."""
    import errno
    import gc

    from pyrunc.init.stage import Stage

    def no_fork():
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
    ours = os.readlink("/proc/self/ns/pid")
    fds = set(os.listdir("/proc/self/fd"))
    frozen = gc.get_freeze_count()
    monkeypatch.setattr(os, "fork", no_fork)
    with pytest.raises(OSError):
        Stage.fork(early=({"pid": ""}, None), pidns=True)
    monkeypatch.undo()
    assert gc.get_freeze_count() == frozen
    assert set(os.listdir("/proc/self/fd")) == fds
    r, w = os.pipe()
    pid = os.fork()  # the thread's next child: in our namespace, not a new one
    if pid == 0:
        os.write(w, os.readlink("/proc/self/ns/pid").encode())
        os._exit(0)
    os.close(w)
    got = os.read(r, 100).decode()
    os.close(r)
    os.waitpid(pid, 0)
    assert got == ours
