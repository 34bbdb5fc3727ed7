"""A `binary://` stdio: the user's logging binary, as containerd starts it
(pkg/process/io.go NewBinaryIO and NewBinaryCmd).

`binary:///path/to/logger?key=value` runs /path/to/logger with the
arguments `key value` (one pair per query key, its first value), the
environment CONTAINER_ID and CONTAINER_NAMESPACE only, /dev/null as its
stdio, and three extra fds: 3 the read end of the container's stdout, 4 of
its stderr, 5 the write end of a pipe that it closes when it is ready (the
shim waits for that before the container is made). It is the one process
the shim starts that is not a container's.

Unlike containerd's shims, the shim keeps no copy of the pipes' write ends
once the container has them: the logger sees EOF as soon as the container's
last process holding them exits. When the process is deleted, the logger
gets SIGTERM, and SIGKILL if it is still there 12 s later (containerd's
binaryIOProcTermTimeout).
"""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Callable

from pyrunc.shim.ttrpc import InvalidArgument

TERM_TIMEOUT = 12.0


def command(uri: str) -> list[str]:
    """The logger's argv from its URI (the path, then key and value for each
    query key in order of first appearance, as Go's url.Query gives them)."""
    from urllib.parse import parse_qsl, unquote, urlsplit
    u = urlsplit(uri)
    path = unquote(u.path)
    if not path:
        raise InvalidArgument(f"{uri}: the logging binary's path is empty")
    argv = [path]
    seen: set[str] = set()
    for key, value in parse_qsl(u.query, keep_blank_values=True):
        if key not in seen:
            seen.add(key)
            argv += [key, value]
    return argv


class BinaryLogger:
    """A started logging binary and the write ends of its two pipes (for
    the container's stdout and stderr)."""

    def __init__(self, uri: str, cid: str, namespace: str) -> None:
        import fcntl
        argv = command(uri)
        out_r, self.stdout = os.pipe2(os.O_CLOEXEC)
        err_r, self.stderr = os.pipe2(os.O_CLOEXEC)
        wait_r, wait_w = os.pipe2(os.O_CLOEXEC)
        # copies above 5, so that no dup2 below overwrites a source
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (out_r, err_r, wait_w)]
        for fd in (out_r, err_r, wait_w):
            os.close(fd)
        self.exited = threading.Event()
        try:
            actions: list[tuple] = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                       (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                       (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)]
            actions += [(os.POSIX_SPAWN_DUP2, src, dst) for src, dst in zip(high, (3, 4, 5))]
            try:
                self.pid = os.posix_spawn(argv[0], argv, {"CONTAINER_ID": cid, "CONTAINER_NAMESPACE": namespace},
                                          file_actions=actions, setsigmask=(),
                                          setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM,
                                                     signal.SIGINT, signal.SIGHUP))
            except OSError as e:
                raise InvalidArgument(f"start the logging binary {argv[0]}: "
                                      f"{os.strerror(e.errno or 0).lower()}") from None
        except BaseException:
            for fd in (self.stdout, self.stderr, wait_r):
                os.close(fd)
            raise
        finally:
            for fd in high:
                os.close(fd)
        try:  # ready: fd 5 closed (or the logger gone)
            while os.read(wait_r, 1):
                pass
        finally:
            os.close(wait_r)

    def close_pipes(self) -> None:
        """The shim's write ends (the container has its own)."""
        for name in ("stdout", "stderr"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)

    def stop(self, reap: Callable[[], None]) -> None:
        """SIGTERM, SIGKILL after TERM_TIMEOUT; `reap` collects exited children
        (it sets `exited` for this one)."""
        self.close_pipes()
        for sig, timeout in ((signal.SIGTERM, TERM_TIMEOUT), (signal.SIGKILL, 5.0)):
            reap()
            if self.exited.is_set():
                return
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                reap()
                if self.exited.is_set():
                    return
                time.sleep(0.01)
