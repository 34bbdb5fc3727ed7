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


def test_file_urls_take_stderr_too_and_make_parents_as_containerd(tmp_path):
    log = tmp_path / "new" / "dir" / "out.log"
    log_url = f"file://{log}"
    s = Stdio("", log_url, "", terminal=False)
    fds = s.open()
    try:
        os.write(fds[1], b"out\n")
        os.write(fds[2], b"err\n")
    finally:
        s.close()
    assert log.read_bytes() == b"out\nerr\n"
    assert (log.stat().st_mode & 0o777, log.parent.stat().st_mode & 0o777) == (0o644 & ~_umask(), 0o755 & ~_umask())


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_binary_urls_start_the_logger_with_containerds_fds_args_and_env(tmp_path):
    import time
    from pyrunc.shim.logger import command
    assert command("binary:///bin/log%20ger?x=1&y&x=2&z=a%2Fb") == ["/bin/log ger", "x", "1", "y", "", "z", "a/b"]
    out = tmp_path / "out"
    script = tmp_path / "logger"
    script.write_text(f"""#!/bin/sh
echo "args=$* env=$(env | grep -v '^PWD=' | sort | tr '\\n' ' ')" > {out}.tmp
exec 5>&-
cat <&3 >> {out}.tmp
cat <&4 >> {out}.tmp
mv {out}.tmp {out}
""")
    script.chmod(0o755)
    s = Stdio("", f"binary://{script}?a=b", f"binary://{script}?a=b", terminal=False)
    fds = s.open("c1", "ns1")
    logger = s.logger
    assert logger is not None
    os.write(fds[1], b"to stdout\n")
    os.write(fds[2], b"to stderr\n")
    assert os.readlink(f"/proc/self/fd/{fds[0]}") == "/dev/null"
    s.close()  # the last writers: the logger sees EOF and ends
    for _ in range(500):
        if out.exists():
            break
        time.sleep(0.01)
    assert out.read_text() == "args=a b env=CONTAINER_ID=c1 CONTAINER_NAMESPACE=ns1 \nto stdout\nto stderr\n"
    os.waitpid(logger.pid, 0)


def test_bad_stdio_is_one_clear_error(tmp_path):
    with pytest.raises(Unimplemented, match="only FIFOs, file:// and binary://"):
        Stdio("", "syslog://x", "", terminal=False).open()
    with pytest.raises(InvalidArgument, match="start the logging binary .*: no such file or directory"):
        Stdio("", f"binary://{tmp_path}/missing?x=1", "", terminal=False).open()
    with pytest.raises(InvalidArgument, match="no such file or directory"):
        Stdio(str(tmp_path / "missing"), "", "", terminal=False).open()
