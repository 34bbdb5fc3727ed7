"""The library's early stage child (init/child.py: early_namespaces): which
configs it serves, and the undo's look for an init pid not yet read."""
from __future__ import annotations

import os
import socket

import pytest

from pyrunc.container.launch import _reported_init_pid
from pyrunc.init.child import can_start_early
from pyrunc.init.sync import Channel, Msg


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
        assert _reported_init_pid(parent) == 4242
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
        assert _reported_init_pid(parent) == 0  # nothing sent: no block
        child.close()
        assert _reported_init_pid(parent) == 0  # EOF
    finally:
        parent.close()
