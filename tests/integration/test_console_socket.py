"""Item 10: terminal: `--console-socket` receives the pty master (runc's protocol:
one SCM_RIGHTS message carrying the fd, its name as data)."""

from __future__ import annotations

import array
import os
import re
import select
import socket
import threading
import time

import pytest

try:  # the shared receiver (uses pyrunc.terminal.recv_fd when importable)
    from helpers_console import ConsoleReceiver as _SharedReceiver
except Exception:  # pragma: no cover - pyrunc not importable: use the inline one
    _SharedReceiver = None


class InlineConsoleReceiver:
    """Minimal console-socket receiver (same API subset as helpers_console)."""

    def __init__(self, path) -> None:
        self.path = os.fspath(path)
        if os.path.lexists(self.path):
            os.unlink(self.path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(4)
        self.master_fd: int | None = None
        self.name: str | None = None
        self.output = bytearray()
        self._cond = threading.Condition()
        self._eof = False
        self._thread: threading.Thread | None = None
        self._stop_r, self._stop_w = os.pipe()

    def accept(self, timeout: float = 10.0) -> int:
        self._sock.settimeout(timeout)
        conn, _ = self._sock.accept()
        with conn:
            fds = array.array("i")
            msg, anc, _flags, _addr = conn.recvmsg(4096, socket.CMSG_SPACE(4 * fds.itemsize))
            for level, typ, data in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
        assert len(fds) == 1, f"expected one fd, got {list(fds)}"
        self.master_fd, self.name = fds[0], msg.decode(errors="replace")
        return self.master_fd

    def start_reading(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        fd = self.master_fd
        while True:
            try:
                ready, _, _ = select.select([fd, self._stop_r], [], [])
                if self._stop_r in ready:
                    return
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            with self._cond:
                if not data:
                    self._eof = True
                    self._cond.notify_all()
                    return
                self.output += data
                self._cond.notify_all()

    def write(self, data: bytes) -> None:
        os.write(self.master_fd, data)

    def wait_for(self, needle: bytes, timeout: float = 10.0) -> bytes:
        end = time.monotonic() + timeout
        with self._cond:
            while needle not in self.output:
                left = end - time.monotonic()
                if left <= 0 or self._eof:
                    raise TimeoutError(f"{needle!r} not seen in {bytes(self.output)!r}")
                self._cond.wait(left)
            return bytes(self.output)

    def wait_eof(self, timeout: float = 10.0) -> bytes:
        end = time.monotonic() + timeout
        with self._cond:
            while not self._eof:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"console still open: {bytes(self.output)!r}")
                self._cond.wait(left)
            return bytes(self.output)

    def close(self) -> None:
        self._sock.close()
        if self._thread is not None:
            os.write(self._stop_w, b"x")
            self._thread.join(timeout=3)
        for fd in (self.master_fd, self._stop_r, self._stop_w):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master_fd = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# PYRUNC_TEST_INLINE_CONSOLE=1 forces the inline receiver (to test it).
ConsoleReceiver = (None if os.environ.get("PYRUNC_TEST_INLINE_CONSOLE") else _SharedReceiver) or InlineConsoleReceiver


def text(data: bytes) -> str:
    return data.decode(errors="replace").replace("\r\n", "\n").replace("\r", "")


@pytest.fixture
def sock_path(tmp_path):
    p = tmp_path / "console.sock"
    if len(str(p).encode()) >= 108:
        p = tmp_path.parent / f"c{os.getpid()}.sock"
    return p


def tty_bundle(bundle, *args, height=17, width=93):
    with bundle.edit() as cfg:
        cfg["process"]["terminal"] = True
        cfg["process"]["consoleSize"] = {"height": height, "width": width}
        cfg["process"]["args"] = list(args)
    return bundle


@pytest.mark.parametrize("mode", [["create"], ["run", "-d"]])
def test_console_socket(rt, bundle, sock_path, mode):
    tty_bundle(bundle, "sh", "-c", "tty; stty size; for f in 0 1 2; do readlink /proc/self/fd/$f; done; echo END")
    cid = rt.new_id()
    with ConsoleReceiver(sock_path) as rx:
        rt.ok(*mode, "--console-socket", sock_path, "--bundle", bundle.path, cid)
        rx.accept()
        rx.start_reading()
        if mode == ["create"]:
            assert rt.state(cid)["status"] == "created"
            rt.start(cid)
        out = text(rx.wait_for(b"END"))
    lines = out.split("\n")
    assert lines[0] == "/dev/pts/0", out
    assert lines[1] == "17 93", out
    assert lines[2:5] == ["/dev/pts/0"] * 3, out
    rt.wait_status(cid, "stopped")


def test_console_is_interactive(rt, bundle, sock_path):
    tty_bundle(bundle, "sh")
    cid = rt.new_id()
    with ConsoleReceiver(sock_path) as rx:
        rt.create(cid, bundle, "--console-socket", sock_path)
        rx.accept()
        rx.start_reading()
        rt.start(cid)
        rx.write(b"echo hi-$((40+2))\n")
        rx.wait_for(b"hi-42")
        rx.write(b"exit 3\n")
        rt.wait_status(cid, "stopped")


def test_console_size_default(rt, bundle, sock_path):
    """Without consoleSize the size is whatever the pty starts with; `stty size`
    must still work (it fails without a tty)."""
    tty_bundle(bundle, "sh", "-c", "stty size && echo OK")
    del bundle.config["process"]["consoleSize"]
    bundle.save()
    cid = rt.new_id()
    with ConsoleReceiver(sock_path) as rx:
        rt.run_d(cid, bundle, "--console-socket", sock_path)
        rx.accept()
        rx.start_reading()
        assert "OK" in text(rx.wait_for(b"OK"))


@pytest.mark.slow  # see test_exec.py::test_exec_detached_pid_file
def test_exec_tty_console_socket(rt, bundle, sock_path):
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    with ConsoleReceiver(sock_path) as rx:
        rt.ok("exec", "-d", "-t", "--console-socket", sock_path, cid, "sh", "-c", "tty; echo END; sleep 1")
        rx.accept()
        rx.start_reading()
        out = text(rx.wait_for(b"END"))
    assert re.match(r"/dev/pts/\d+\n", out), out


def test_terminal_without_console_socket_fails(rt, bundle, leakcheck):
    # runc: "cannot allocate tty if runc will detach without setting console socket"
    tty_bundle(bundle, "true")
    rt.fail("create", "--bundle", bundle.path, rt.new_id(), match="console", one_line=True)
    rt.fail("run", "-d", "--bundle", bundle.path, rt.new_id(), match="console", one_line=True)
    assert rt.container_dirs() == []
    leakcheck.assert_clean()


def test_console_socket_without_terminal_fails(rt, bundle, sock_path, leakcheck):
    # runc: "cannot use console socket if runc will not detach or allocate tty"
    bundle.set_args("true")
    with ConsoleReceiver(sock_path):
        rt.fail("create", "--console-socket", sock_path, "--bundle", bundle.path, rt.new_id(), match="console", one_line=True)
    assert rt.container_dirs() == []
    leakcheck.assert_clean()


def test_console_socket_missing(rt, bundle, tmp_path, leakcheck):
    tty_bundle(bundle, "true")
    rt.fail("create", "--console-socket", tmp_path / "nope.sock", "--bundle", bundle.path, rt.new_id(), one_line=True)
    assert rt.container_dirs() == []
    leakcheck.assert_clean()


def test_inline_receiver_available():
    """The fallback receiver is importable on its own (no pyrunc needed)."""
    assert InlineConsoleReceiver.accept
