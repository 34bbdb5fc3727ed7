"""Tests of pyrunc.terminal: ptys, fd passing, console socket, the proxy.

They use real ptys from the host's devpts (run as root) and real child
processes on the slave side, standing in for a container.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import stat
import struct
import termios
import time

import pytest

from pyrunc import terminal
from pyrunc.terminal import (
    Proxy,
    TerminalError,
    get_window_size,
    open_pty,
    proxy,
    recv_fd,
    send_fd,
    send_to_console_socket,
    set_window_size,
    setup_slave_as_stdio,
)


@pytest.fixture
def fds():
    """Collect fds to close at the end of a test."""
    opened: list[int] = []
    yield opened
    for fd in opened:
        try:
            os.close(fd)
        except OSError:
            pass


@pytest.fixture
def pty(fds):
    """A fresh pty pair: (master, slave, path)."""
    master, slave, path = open_pty()
    fds += [master, slave]
    return master, slave, path


def spawn_on_slave(master: int, slave: int, argv: list[str], fds: list[int]) -> int:
    """Fork a child that makes `slave` its ctty and stdio, then execs argv
    (like the container init does); the parent keeps no slave fd (and drops
    it from `fds`, so that teardown cannot close a reused number)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(master)
            setup_slave_as_stdio(slave)
            if slave > 2:
                os.close(slave)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    os.close(slave)
    if slave in fds:
        fds.remove(slave)
    return pid


def wait_status(pid: int, timeout: float = 10.0) -> int:
    """waitpid with a deadline; returns the exit code (or -signal)."""
    end = time.monotonic() + timeout
    while True:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got == pid:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > end:
            try:
                with open(f"/proc/{pid}/status") as f:
                    info = " ".join(
                        line.strip() for line in f if line.startswith(("State", "Sig", "Shd"))
                    )
                with open(f"/proc/{pid}/wchan") as f:
                    info += " wchan=" + f.read()
            except OSError:
                info = "?"
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"child did not exit: {info}")
        time.sleep(0.01)


def read_all(fd: int) -> bytes:
    """Read a pipe to EOF."""
    chunks = []
    while True:
        data = os.read(fd, 65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


# -- pty allocation ----------------------------------------------------------


def test_open_pty_pair(pty):
    master, slave, path = pty
    assert path == os.ttyname(slave)
    assert path.startswith("/dev/pts/")
    st = os.fstat(slave)
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 136
    assert not os.get_inheritable(master) and not os.get_inheritable(slave)
    # The pair is connected and unlocked.
    os.write(slave, b"ping\n")
    assert os.read(master, 100).startswith(b"ping")


def test_open_pty_without_tiocgptpeer(monkeypatch, fds):
    """Older kernels: the slave is opened by path and checked."""
    monkeypatch.setattr(terminal, "TIOCGPTPEER", 0x54FF)  # unknown ioctl: ENOTTY
    master, slave, path = open_pty()
    fds += [master, slave]
    assert os.ttyname(slave) == path
    os.write(master, b"x")


def test_open_pty_errors(tmp_path):
    with pytest.raises(TerminalError, match=r"^open /nonexistent/ptmx: no such file or directory$"):
        open_pty("/nonexistent/ptmx")
    with pytest.raises(TerminalError, match="not a ptmx device"):
        open_pty("/dev/null")
    link = tmp_path / "ptmx"
    link.symlink_to("/dev/pts/ptmx")
    with pytest.raises(TerminalError, match="symbolic links"):
        open_pty(str(link))


def test_open_pty_rejects_ptmx_outside_devpts(tmp_path):
    """A 5:2 node planted outside a devpts must not be used."""
    node = tmp_path / "ptmx"
    os.mknod(node, 0o600 | stat.S_IFCHR, os.makedev(5, 2))
    with pytest.raises(TerminalError):
        open_pty(str(node))


def test_window_size(pty, fds):
    master, slave, _ = pty
    set_window_size(master, 40, 120)
    assert get_window_size(slave) == (40, 120)
    assert get_window_size(master) == (40, 120)
    with pytest.raises(TerminalError, match="invalid console size"):
        set_window_size(master, -1, 5)
    null = os.open("/dev/null", os.O_RDONLY)
    fds.append(null)
    with pytest.raises(TerminalError, match="get console size"):
        get_window_size(null)


def test_setup_slave_as_stdio(pty):
    master, slave, path = pty
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            setup_slave_as_stdio(slave)
            names = [os.ttyname(fd) for fd in (0, 1, 2)]
            with open("/proc/self/stat") as f:  # field 7: controlling tty
                tty_nr = int(f.read().rsplit(")", 1)[1].split()[4])
            info = (
                f"{names[0]} {names[1]} {names[2]} "
                f"{int(os.getsid(0) == os.getpid())} "
                f"{int(tty_nr == os.fstat(0).st_rdev)} "
                f"{int(os.tcgetpgrp(0) == os.getpgrp())}"
            )
            os.write(w, info.encode())
            os._exit(0)
        finally:
            os._exit(1)
    os.close(w)
    out = read_all(r).decode()
    os.close(r)
    assert wait_status(pid) == 0
    assert out == f"{path} {path} {path} 1 1 1"


# -- fd passing ----------------------------------------------------------------


def test_send_recv_fd_socketpair(fds):
    a, b = socket.socketpair()
    with a, b:
        r, w = os.pipe()
        fds += [r, w]
        send_fd(a, w, "/dev/pts/ptmx")
        got, name = recv_fd(b)
        fds.append(got)
        assert name == "/dev/pts/ptmx"
        assert got != w and not os.get_inheritable(got)
        os.write(got, b"through")
        assert os.read(r, 100) == b"through"
        # raw fds work as well
        send_fd(a.fileno(), r, "x")
        got2, name2 = recv_fd(b.fileno())
        fds.append(got2)
        assert name2 == "x"
        assert os.fstat(got2).st_ino == os.fstat(r).st_ino


def test_recv_fd_errors(fds):
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"no fd here")
        with pytest.raises(TerminalError, match="expected 1 file descriptor, got 0"):
            recv_fd(b)
        r, w = os.pipe()
        fds += [r, w]
        socket.send_fds(a, [b"two"], [r, w])
        before = set(os.listdir("/proc/self/fd"))
        with pytest.raises(TerminalError, match="expected 1 file descriptor, got 2"):
            recv_fd(b)
        assert set(os.listdir("/proc/self/fd")) == before  # surplus fds closed
        a.close()
        with pytest.raises(TerminalError, match="connection closed"):
            recv_fd(b)
    with pytest.raises(TerminalError, match="invalid file name"):
        send_fd(0, 0, "")
    null = os.open("/dev/null", os.O_RDWR)
    fds.append(null)
    with pytest.raises(TerminalError, match="^sendfd: socket operation on non-socket$"):
        send_fd(null, null, "x")
    with pytest.raises(TerminalError, match="^recvfd: socket operation on non-socket$"):
        recv_fd(null)


def test_send_to_console_socket(tmp_path, pty, fds):
    master, slave, _ = pty
    path = str(tmp_path / "console.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        send_to_console_socket(path, master)
        conn, _ = listener.accept()
        with conn:
            got, name = recv_fd(conn)
            fds.append(got)
            assert name == terminal.MASTER_NAME
            # and the connection is closed after the one fd, as with runc
            assert conn.recv(10) == b""
    os.write(slave, b"hello\n")
    assert os.read(got, 100).startswith(b"hello")


def test_console_socket_errors(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(TerminalError, match=rf"^console socket {missing}: no such file or directory$"):
        send_to_console_socket(str(missing), 0)
    regular = tmp_path / "file"
    regular.write_text("")
    with pytest.raises(TerminalError, match=rf"^console socket {regular}: not a socket$"):
        send_to_console_socket(str(regular), 0)
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()  # bound, never listening
    with pytest.raises(TerminalError, match=rf"^console socket {stale}: connection refused$"):
        send_to_console_socket(str(stale), 0)


# -- raw mode ------------------------------------------------------------------


def test_raw_mode_set_and_restored(pty, fds):
    host_master, host_slave, _ = pty
    before = termios.tcgetattr(host_slave)
    assert before[3] & termios.ICANON
    c_master, c_slave, _ = open_pty()
    fds += [c_master, c_slave]
    with pytest.raises(RuntimeError):
        with Proxy(c_master, stdin_fd=host_slave, stdout_fd=host_slave) as p:
            during = termios.tcgetattr(host_slave)
            assert not during[3] & (termios.ICANON | termios.ECHO | termios.ISIG)
            assert during[1] & termios.OPOST  # output processing stays
            assert p.host_tty == host_slave
            raise RuntimeError("boom")
    assert termios.tcgetattr(host_slave) == before
    # ONLCR is off on the container pty, as runc does in the foreground
    assert not termios.tcgetattr(c_slave)[1] & termios.ONLCR
    assert os.get_blocking(c_master)


def test_raw_mode_restored_when_killed(pty, fds):
    """SIGTERM with no handler of our own: restore, then die of it."""
    host_master, host_slave, _ = pty
    before = termios.tcgetattr(host_slave)
    c_master, c_slave, _ = open_pty()
    fds += [c_master, c_slave]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.close(r)
            p = Proxy(c_master, stdin_fd=host_slave, stdout_fd=host_slave).start()
            os.write(w, b"raw")
            while True:
                p.step(None)
        finally:
            os._exit(1)
    os.close(w)
    assert os.read(r, 10) == b"raw"
    assert not termios.tcgetattr(host_slave)[3] & termios.ICANON
    os.kill(pid, signal.SIGTERM)
    assert wait_status(pid) == -signal.SIGTERM
    os.close(r)
    assert termios.tcgetattr(host_slave) == before


# -- the proxy -----------------------------------------------------------------


def test_proxy_copies_both_ways(pty, fds):
    master, slave, _ = pty
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    fds += [in_r, in_w, out_r, out_w]
    pid = spawn_on_slave(master, slave, ["/bin/sh", "-c", "read x; echo got $x"], fds)
    os.write(in_w, b"hello\n")
    start = time.monotonic()
    proxy(master, stdin_fd=in_r, stdout_fd=out_w)
    assert time.monotonic() - start < 5
    assert wait_status(pid) == 0
    os.close(out_w)
    fds.remove(out_w)
    out = read_all(out_r)
    assert out.endswith(b"got hello\n")
    assert b"\r" not in out  # -onlcr on the container pty


def test_proxy_stdin_eof_and_no_tty(pty, fds):
    """stdin at EOF (like </dev/null) does not end the session early."""
    master, slave, _ = pty
    out_r, out_w = os.pipe()
    fds += [out_r, out_w]
    null = os.open("/dev/null", os.O_RDONLY)
    fds.append(null)
    terminal.clear_onlcr(master)  # proxy() does it too, maybe after the echo
    pid = spawn_on_slave(master, slave, ["/bin/sh", "-c", "sleep 0.2; echo late"], fds)
    proxy(master, stdin_fd=null, stdout_fd=out_w)
    assert wait_status(pid) == 0
    assert os.read(out_r, 100) == b"late\n"


def test_proxy_with_wakeup_fd_and_drain(pty, fds):
    """The caller's loop: SIGCHLD via set_wakeup_fd, reap, then drain."""
    master, slave, _ = pty
    out_r, out_w = os.pipe()
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    fds += [out_r, out_w, wake_r, wake_w]
    sink = bytearray()
    old_chld = signal.signal(signal.SIGCHLD, lambda *_: None)
    old_wake = signal.set_wakeup_fd(wake_w)
    # Started first so that -onlcr is in place before the child writes.
    p = Proxy(master, stdin_fd=None, stdout_fd=out_w).start()
    try:
        pid = spawn_on_slave(master, slave, ["/usr/bin/busybox", "seq", "1", "20000"], fds)
        status = []

        def on_wake() -> bool:
            try:
                os.read(wake_r, 512)
            except BlockingIOError:
                pass
            got, st = os.waitpid(pid, os.WNOHANG)
            if got == pid:
                status.append(os.waitstatus_to_exitcode(st))
                return True
            return False

        # Collect output concurrently: the pipe is smaller than the output.
        with p:
            while True:
                ready = p.step(None, [wake_r, out_r])
                if out_r in ready:
                    sink += os.read(out_r, 65536)
                if wake_r in ready and on_wake():
                    break
            p.drain()
    finally:
        p.close()
        signal.set_wakeup_fd(old_wake)
        signal.signal(signal.SIGCHLD, old_chld)
    os.close(out_w)
    fds.remove(out_w)
    sink += read_all(out_r)
    assert status == [0]
    assert sink == b"".join(b"%d\n" % i for i in range(1, 20001))


def test_drain_does_not_wait_for_a_daemon(pty, fds):
    """A leftover process holding the slave must not hold the proxy up."""
    master, slave, _ = pty
    out_r, out_w = os.pipe()
    fds += [out_r, out_w]
    pid = spawn_on_slave(
        master, slave, ["/bin/sh", "-c", 'trap "" HUP; sleep 30 & echo "bg $!"; echo done'], fds
    )
    assert wait_status(pid) == 0
    with Proxy(master, stdin_fd=None, stdout_fd=out_w) as p:
        start = time.monotonic()
        p.drain(idle=0.2)
        assert time.monotonic() - start < 1.5
        assert not p.master_closed
    out = os.read(out_r, 1000).decode().replace("\r", "")  # written before -onlcr
    assert out.endswith("done\n")
    bg = int(out.split()[1])
    os.kill(bg, signal.SIGKILL)


def test_proxy_survives_broken_stdout(pty, fds):
    master, slave, _ = pty
    out_r, out_w = os.pipe()
    fds += [out_w]
    os.close(out_r)
    pid = spawn_on_slave(master, slave, ["/usr/bin/busybox", "seq", "1", "50000"], fds)
    proxy(master, stdin_fd=None, stdout_fd=out_w)
    assert wait_status(pid) == 0


def test_step_waits_without_spinning(pty, fds):
    master, slave, _ = pty
    r, w = os.pipe()
    fds += [r, w]
    with Proxy(master, stdin_fd=None, stdout_fd=w) as p:
        cpu, start = time.process_time(), time.monotonic()
        assert p.step(0.3, [r]) == set()
        assert time.monotonic() - start >= 0.25
        assert time.process_time() - cpu < 0.1
        os.write(w, b"x")
        assert p.step(1.0, [r]) == {r}
        p.master_closed = True
        assert p.step(None) == set()  # nothing left to wait for


def test_sigwinch_is_forwarded(pty, fds):
    host_master, host_slave, _ = pty
    c_master, c_slave, _ = open_pty()
    fds += [c_master]
    out_r, out_w = os.pipe()
    fds += [out_r, out_w]
    set_window_size(host_master, 30, 100)
    set_window_size(c_master, 10, 10)
    # A child on the container pty waits for SIGWINCH and reports its size.
    r, w = os.pipe()
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGWINCH])
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.close(c_master)
                os.close(r)
                setup_slave_as_stdio(c_slave)
                os.write(w, b"ready\n")
                while True:
                    signal.sigwait([signal.SIGWINCH])
                    os.write(w, b"%d %d\n" % get_window_size(0))
            finally:
                os._exit(1)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGWINCH])
    os.close(c_slave)
    os.close(w)
    try:
        assert os.read(r, 100) == b"ready\n"
        old = signal.getsignal(signal.SIGWINCH)
        with Proxy(c_master, stdin_fd=host_slave, stdout_fd=out_w):
            assert get_window_size(c_master) == (30, 100)  # copied at start
            assert os.read(r, 100) == b"30 100\n"
            set_window_size(host_master, 50, 160)
            os.kill(os.getpid(), signal.SIGWINCH)  # what the terminal would send us
            assert get_window_size(c_master) == (50, 160)
            assert os.read(r, 100) == b"50 160\n"
        assert signal.getsignal(signal.SIGWINCH) == old
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)


def test_no_host_tty_keeps_console_size(pty, fds):
    """Without a terminal of ours, process.consoleSize stays as set."""
    master, _, _ = pty
    set_window_size(master, 24, 132)
    r, w = os.pipe()
    fds += [r, w]
    with Proxy(master, stdin_fd=r, stdout_fd=w) as p:
        assert p.host_tty is None
    assert get_window_size(master) == (24, 132)


def test_ioctl_numbers():
    if os.uname().machine in ("x86_64", "aarch64", "riscv64", "s390x", "i686", "armv7l"):
        assert terminal.TIOCGPTN == 0x80045430
        assert terminal.TIOCSPTLCK == 0x40045431
        assert terminal.TIOCGPTPEER == 0x5441


def test_require_tty_like_runc(pty, fds):
    """runc run -t with no terminal at all fails on /dev/tty; so can we."""
    master, _, _ = pty
    r, w = os.pipe()
    fds += [r, w]
    res_r, res_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setsid()  # no controlling terminal any more
            try:
                Proxy(master, stdin_fd=r, stdout_fd=w, require_tty=True).start()
                os.write(res_w, b"started")
            except TerminalError as e:
                os.write(res_w, str(e).encode())
            os._exit(0)
        finally:
            os._exit(1)
    os.close(res_w)
    msg = read_all(res_r).decode()
    os.close(res_r)
    assert wait_status(pid) == 0
    assert msg == "open /dev/tty: no such device or address"


def test_close_keeps_handlers_installed_later(pty, fds):
    master, _, _ = pty
    r, w = os.pipe()
    fds += [r, w]
    before = signal.getsignal(signal.SIGWINCH)

    def mine(signum, frame):
        pass

    p = Proxy(master, stdin_fd=r, stdout_fd=w).start()
    signal.signal(signal.SIGWINCH, mine)
    try:
        p.close()
        assert signal.getsignal(signal.SIGWINCH) is mine
    finally:
        signal.signal(signal.SIGWINCH, before)


def test_wakeup_fd_owned_only_when_free(pty, fds):
    """The proxy wakes its poll on signals via its own wakeup fd, but never
    takes over one the caller has set (the caller polls that one)."""
    master, _, _ = pty
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    fds += [r, w]
    assert signal.set_wakeup_fd(-1) == -1
    with Proxy(master, stdin_fd=None, stdout_fd=w) as p:
        assert p._wake_w >= 0 and signal.set_wakeup_fd(p._wake_w) == p._wake_w
        # a signal with a Python handler wakes an otherwise idle step at once
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        old = signal.signal(signal.SIGALRM, lambda *_: None)
        try:
            start = time.monotonic()
            p.step(5.0)
            assert time.monotonic() - start < 2
        finally:
            signal.signal(signal.SIGALRM, old)
    assert signal.set_wakeup_fd(-1) == -1
    signal.set_wakeup_fd(w)
    try:
        with Proxy(master, stdin_fd=None, stdout_fd=w) as p:
            assert p._wake_w == -1
        assert signal.set_wakeup_fd(w) == w
    finally:
        signal.set_wakeup_fd(-1)


def test_caller_driven_select_loop(pty, fds):
    """fds()/pump(): the proxy inside the caller's own select loop, with the
    caller's wakeup fd for signals (the shape of a foreground `run`)."""
    import select

    master, slave, _ = pty
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    fds += [in_r, in_w, out_r, out_w, wake_r, wake_w]
    old_chld = signal.signal(signal.SIGCHLD, lambda *_: None)
    old_wake = signal.set_wakeup_fd(wake_w)
    try:
        p = Proxy(master, stdin_fd=in_r, stdout_fd=out_w)  # started by fds()
        pid = spawn_on_slave(master, slave, ["/bin/sh", "-c", "read x; echo got $x; exit 3"], fds)
        os.write(in_w, b"typed\n")
        status = None
        try:
            while status is None:
                ready, writable, _ = select.select(
                    [wake_r] + p.fds(), [master] if p.wants_write else [], [], 5.0
                )
                assert ready or writable, "select timed out"
                if wake_r in ready:
                    os.read(wake_r, 512)
                    got, st = os.waitpid(pid, os.WNOHANG)
                    if got == pid:
                        status = os.waitstatus_to_exitcode(st)
                p.pump(ready)
            p.drain()
        finally:
            p.close()
    finally:
        signal.set_wakeup_fd(old_wake)
        signal.signal(signal.SIGCHLD, old_chld)
    assert status == 3
    os.close(out_w)
    fds.remove(out_w)
    assert read_all(out_r) == b"typed\ngot typed\n"
