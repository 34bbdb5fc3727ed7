"""A --console-socket receiver for integration tests (like runc's recvtty).

    with ConsoleReceiver(tmp_path / "console.sock") as rx:
        run(["pyrunc", "create", "--console-socket", rx.path, cid])
        rx.accept()              # waits for the runtime to send the pty master
        rx.start_reading()       # copies the container's output into rx.output
        run(["pyrunc", "start", cid])
        rx.write(b"echo hi\\n")
        rx.wait_for(b"hi")

It uses pyrunc.terminal.recv_fd, which speaks runc's protocol (one fd in one
SCM_RIGHTS message, the master's file name as data), so the same receiver
works against Debian's runc for differential tests.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from pathlib import Path

from pyrunc.terminal import recv_fd


class ConsoleReceiver:
    """Listen on a unix socket path and receive one pty master from a runtime."""

    def __init__(self, path: str | os.PathLike[str], *, backlog: int = 4) -> None:
        self.path = os.fspath(path)
        if os.path.lexists(self.path):
            os.unlink(self.path)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(backlog)
        self.master_fd: int | None = None
        self.name: str | None = None
        self.output = bytearray()
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None
        self._eof = False
        self._stop_r, self._stop_w = os.pipe()

    # -- receiving the master

    def accept(self, timeout: float = 10.0) -> int:
        """Accept one connection and return the master fd it carries."""
        self._listener.settimeout(timeout)
        try:
            conn, _ = self._listener.accept()
        except socket.timeout:
            raise TimeoutError(f"no runtime connected to {self.path} within {timeout}s") from None
        with conn:
            conn.settimeout(timeout)
            fd, name = recv_fd(conn)
        self.master_fd, self.name = fd, name
        return fd

    # -- talking to the container

    def start_reading(self) -> None:
        """Copy the master's output into ``self.output`` in a thread, until
        EOF/EIO (all of the container's handles on the slave are closed)."""
        assert self.master_fd is not None, "accept() first"
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        fd = self.master_fd
        assert fd is not None
        while True:
            try:
                readable, _, _ = select.select([fd, self._stop_r], [], [])
                if self._stop_r in readable:
                    return
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError:  # EIO: the slave side is closed
                data = b""
            with self._cond:
                if not data:
                    self._eof = True
                    self._cond.notify_all()
                    return
                self.output += data
                self._cond.notify_all()

    def write(self, data: bytes) -> None:
        """Type `data` into the container's terminal."""
        assert self.master_fd is not None, "accept() first"
        view = memoryview(data)
        while view:
            view = view[os.write(self.master_fd, view):]

    def wait_for(self, needle: bytes, timeout: float = 10.0) -> bytes:
        """Wait until `needle` appears in the output; return the output."""
        end = time.monotonic() + timeout
        with self._cond:
            while needle not in self.output:
                left = end - time.monotonic()
                if left <= 0 or self._eof:
                    raise TimeoutError(f"{needle!r} not seen; output so far: {bytes(self.output)!r}")
                self._cond.wait(left)
            return bytes(self.output)

    def wait_eof(self, timeout: float = 10.0) -> bytes:
        """Wait until the container side of the pty is closed."""
        end = time.monotonic() + timeout
        with self._cond:
            while not self._eof:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"console still open; output so far: {bytes(self.output)!r}")
                self._cond.wait(left)
            return bytes(self.output)

    # -- cleanup

    def close(self) -> None:
        """Close the listener, the master and the socket path."""
        self._listener.close()
        if self._reader is not None:
            os.write(self._stop_w, b"x")
            self._reader.join(timeout=5)
            self._reader = None
        if self.master_fd is not None:
            os.close(self.master_fd)
            self.master_fd = None
        for fd in (self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._stop_r = self._stop_w = -1
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "ConsoleReceiver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def console_socket_path(directory: str | os.PathLike[str]) -> str:
    """A socket path short enough for sun_path (108 bytes)."""
    path = str(Path(directory) / "console.sock")
    if len(path.encode()) >= 108:
        raise ValueError(f"socket path too long for AF_UNIX: {path}")
    return path
