"""A task process's stdio as containerd hands it to the shim: paths of FIFOs
that the client (ctr, the CRI plugin) has made and reads or writes, `file://`
paths, or nothing.

Without a terminal the shim opens the FIFOs and gives the fds to the
container directly (pyrunc's library takes them as the container's 0, 1 and
2): no copy, no pipe in between; the client sees EOF when the container's
last writer closes. A FIFO is opened read-write first (which never blocks,
whether or not the client has its end open yet) and reopened in its own
direction through /proc/self/fd, so that the container holds a plain
reader or writer. `file://PATH` (containerd's createIO): stdout and stderr
both appended to PATH (made 0644, its missing parents 0755). `binary://`
(shim/logger.py): pipes to the user's logging binary. With a terminal, the pty's master is copied to and from
the FIFOs by two threads (Console).

The shim also holds a read end of each stdout and stderr FIFO, never read,
until the process is deleted (runc's shim does the same): while no client
reads (containerd restarting, `ctr run -d` gone), what the container writes
waits in the pipe for the next reader instead of failing with EPIPE (or
killing the writer with SIGPIPE).
"""
from __future__ import annotations

import os
import threading

TYPE_CHECKING = False  # typing: 4 ms of the server's start (see ttrpc)

from pyrunc.shim.ttrpc import InvalidArgument, Unimplemented

if TYPE_CHECKING:
    from pyrunc.shim.logger import BinaryLogger


def _open_fifo(path: str, flags: int) -> int:
    if path.startswith("file://"):
        path = path[len("file://"):]
        os.makedirs(os.path.dirname(path) or "/", mode=0o755, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    if "://" in path and not path.startswith("fifo://"):
        raise Unimplemented(f"{path}: only FIFOs, file:// and binary:// stdio are supported")
    path = _fifo_path(path)
    try:
        rw = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        raise InvalidArgument(f"open {path}: {os.strerror(e.errno or 0).lower()}") from None
    try:
        return os.open(f"/proc/self/fd/{rw}", flags | os.O_CLOEXEC)
    finally:
        os.close(rw)


def _fifo_path(path: str) -> str:
    """The FIFO of a stdio URI ("" for none, a file:// or binary:// one)."""
    if not path or ("://" in path and not path.startswith("fifo://")):
        return ""
    return path[len("fifo://"):] if path.startswith("fifo://") else path


def hold_reader(path: str, readers: list[int]) -> None:
    """A read end of the FIFO `path` kept in `readers` (see the module's
    docstring); none for another kind of stdio."""
    fifo = _fifo_path(path)
    if fifo:
        try:
            readers.append(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
        except OSError:
            pass  # the writer's own open reports a missing FIFO


class Stdio:
    """The paths containerd gave, and the fds the shim opened for them."""

    def __init__(self, stdin: str, stdout: str, stderr: str, terminal: bool) -> None:
        self.stdin, self.stdout, self.stderr, self.terminal = stdin, stdout, stderr, terminal
        self.fds: list[int] = []
        self.readers: list[int] = []  # held until release()
        self.logger: BinaryLogger | None = None

    def open(self, cid: str = "", namespace: str = "") -> tuple[int, int, int]:
        """(stdin, stdout, stderr) for the container: the FIFOs, /dev/null
        for an absent one; a `binary://` stdout starts the logging binary
        (for process `cid`), whose pipes take stdout and stderr."""
        if self.stdout.startswith("binary://"):
            return self._open_binary(cid, namespace)
        stderr = self.stdout if self.stdout.startswith("file://") else self.stderr
        try:
            out = []
            for path, flags in ((self.stdin, os.O_RDONLY), (self.stdout, os.O_WRONLY),
                                (stderr, os.O_WRONLY)):
                fd = _open_fifo(path, flags) if path else os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                self.fds.append(fd)
                out.append(fd)
                if flags == os.O_WRONLY:
                    hold_reader(path, self.readers)
            return out[0], out[1], out[2]
        except BaseException:
            self.close()
            raise

    def _open_binary(self, cid: str, namespace: str) -> tuple[int, int, int]:
        from pyrunc.shim.logger import BinaryLogger
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)  # containerd: no stdin with a logger
        try:
            self.logger = BinaryLogger(self.stdout, cid, namespace)
        except BaseException:
            os.close(null)
            raise
        self.fds.append(null)
        return null, self.logger.stdout, self.logger.stderr

    def close(self) -> None:
        """Our copies (the container keeps its own)."""
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        if self.logger is not None:
            self.logger.close_pipes()

    def release(self) -> None:
        """The process is deleted: the FIFOs' read ends go too."""
        readers, self.readers = self.readers, []
        for fd in readers:
            os.close(fd)


class Console:
    """A pty master copied to the stdout FIFO and from the stdin FIFO. Each
    thread closes only its own fds, and the master goes once both are done
    (never an fd number another thread may still use)."""

    def __init__(self, master: int, stdio: Stdio, cid: str = "", namespace: str = "") -> None:
        self.master = master
        self.stdin_fd = _open_fifo(stdio.stdin, os.O_RDONLY) if stdio.stdin else -1
        if stdio.stdout.startswith("binary://"):  # containerd's CopyConsole: the logger's fd 3
            from pyrunc.shim.logger import BinaryLogger
            try:
                stdio.logger = logger = BinaryLogger(stdio.stdout, cid, namespace)
            except BaseException:
                if self.stdin_fd >= 0:
                    os.close(self.stdin_fd)
                raise
            self.stdout_fd, logger.stdout = logger.stdout, -1
            logger.close_pipes()  # stderr: a terminal has none
        else:
            self.stdout_fd = _open_fifo(stdio.stdout, os.O_WRONLY) if stdio.stdout else -1
            hold_reader(stdio.stdout, stdio.readers)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self.done = threading.Event()
        self.closed = False
        self._in_thread = None
        threading.Thread(target=self._out, daemon=True).start()
        if self.stdin_fd >= 0:
            self._in_thread = threading.Thread(target=self._in, daemon=True)
            self._in_thread.start()

    def _out(self) -> None:
        try:
            while True:
                try:
                    data = os.read(self.master, 32768)
                except OSError:  # EIO: every slave fd is closed
                    break
                if not data:
                    break
                if self.stdout_fd >= 0:
                    view = memoryview(data)
                    while view:
                        try:
                            view = view[os.write(self.stdout_fd, view):]
                        except OSError:
                            view = view[:0]
        finally:
            if self.stdout_fd >= 0:
                os.close(self.stdout_fd)
                self.stdout_fd = -1
            self.done.set()

    def _in(self) -> None:
        import select
        fd = self.stdin_fd
        try:
            while True:
                ready = select.select([fd, self._wake_r], [], [])[0]
                if self._wake_r in ready:
                    break
                try:
                    data = os.read(fd, 32768)
                except OSError:
                    break
                if not data:
                    break
                try:
                    os.write(self.master, data)
                except OSError:
                    break
        finally:
            self.stdin_fd = -1
            os.close(fd)

    def resize(self, width: int, height: int) -> None:
        if self.closed:  # the process has exited: nothing to resize
            return
        from pyrunc.terminal import set_window_size
        set_window_size(self.master, height, width)

    def close_stdin(self) -> None:
        """CloseIO: the copy from stdin stops (and closes the FIFO)."""
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def close(self) -> None:
        """The process has exited: the output is drained (a while), then
        every fd goes."""
        self.done.wait(2)
        self.close_stdin()
        if self._in_thread is not None:
            self._in_thread.join(2)
        if self.closed:
            return
        if self._in_thread is None or not self._in_thread.is_alive():
            self.closed = True
            for fd in (self.master, self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass


class ConsoleSocket:
    """A listening socket for the library's console_socket: it connects and
    sends the master during create; we accept after it returns."""

    def __init__(self) -> None:
        import socket
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="pyrunc-shim-pty")
        self.path = os.path.join(self.dir, "pty.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)

    def receive(self) -> int:
        from pyrunc.terminal import recv_fd
        self.sock.settimeout(10)
        conn, _ = self.sock.accept()
        try:
            conn.settimeout(10)
            fd, _name = recv_fd(conn)
            return fd
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)
