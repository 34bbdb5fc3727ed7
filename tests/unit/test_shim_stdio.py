"""shim/stdio.py: how the shim opens the stdio containerd names."""
from __future__ import annotations

import fcntl
import os

import pytest

from pyrunc.shim.stdio import Stdio
from pyrunc.shim.ttrpc import InvalidArgument, Unimplemented


def test_fifos_open_without_a_peer_and_in_their_own_direction(tmp_path):
    paths = []
    for name in ("in", "out", "err"):
        p = tmp_path / name
        os.mkfifo(p)
        paths.append(str(p))
    s = Stdio(*paths, terminal=False)
    fds = s.open()  # no client has the other ends open: still no blocking
    try:
        modes = [os.O_ACCMODE & fcntl.fcntl(fd, fcntl.F_GETFL) for fd in fds]
        assert modes == [os.O_RDONLY, os.O_WRONLY, os.O_WRONLY]
        assert all(not os.get_inheritable(fd) for fd in fds)
    finally:
        s.close()
    assert s.fds == []


def test_absent_stdio_is_dev_null_and_file_urls_append(tmp_path):
    log = tmp_path / "logs" / "out.log"
    s = Stdio("", f"file://{log}", "", terminal=False)
    fds = s.open()
    try:
        assert os.readlink(f"/proc/self/fd/{fds[0]}") == "/dev/null"
        os.write(fds[1], b"line\n")
    finally:
        s.close()
    assert log.read_bytes() == b"line\n"


def test_bad_stdio_is_one_clear_error(tmp_path):
    with pytest.raises(Unimplemented, match="only FIFOs and file://"):
        Stdio("", "binary:///usr/bin/logger?x=1", "", terminal=False).open()
    with pytest.raises(InvalidArgument, match="no such file or directory"):
        Stdio(str(tmp_path / "missing"), "", "", terminal=False).open()
