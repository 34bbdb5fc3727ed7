"""Staying with a container in the foreground (`run`, `exec` without -d):
forward signals to it, proxy its terminal, reap it, return its exit status.

pyrunc is a child subreaper here, so the container's init (whose real parent,
the stage child, has exited) is reparented to us and we can wait for it.
"""
from __future__ import annotations

import _signal as signal
import os
import select

# signals that are never forwarded: uncatchable, synchronous faults, and the
# ones we handle ourselves (SIGCHLD to reap, SIGWINCH for the terminal)
_NOT_FORWARDED = {signal.SIGKILL, signal.SIGSTOP, signal.SIGSEGV, signal.SIGBUS,
                  signal.SIGFPE, signal.SIGILL, signal.SIGCHLD, signal.SIGWINCH, 32, 33}


def become_subreaper() -> int:
    """Make this process the reaper of orphans below it; returns the previous
    setting, for a library caller to restore (a process that stays a
    subreaper collects zombies of every container it later creates)."""
    from ..linux import consts as C
    from ..linux import ffi
    from ..linux import sys as L
    prev = ffi.c_int(0)
    L.prctl(37, ffi.addressof(prev))  # PR_GET_CHILD_SUBREAPER
    L.prctl(C.PR_SET_CHILD_SUBREAPER, 1)
    return prev.value


def restore_subreaper(prev: int) -> None:
    from ..linux import consts as C
    from ..linux import sys as L
    if not prev:
        L.prctl(C.PR_SET_CHILD_SUBREAPER, 0)


def exit_status(status: int) -> int:
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return 255


def exit_status_of(code: int, status: int) -> int:
    """exit_status for waitid's (si_code, si_status)."""
    if code == os.CLD_EXITED:
        return status
    if code in (os.CLD_KILLED, os.CLD_DUMPED):
        return 128 + status
    return 255


class Forwarder:
    """Record signals through a wakeup pipe so one select() loop serves the
    terminal fds and the signals alike."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.pending: list[int] = []
        self.old_wakeup = signal.set_wakeup_fd(self.w)
        self.old_handlers: dict[int, object] = {}
        for s in range(1, signal.NSIG):
            if s in _NOT_FORWARDED and s not in (signal.SIGCHLD, signal.SIGWINCH):
                continue
            try:
                self.old_handlers[s] = signal.signal(s, self._handler)
            except (OSError, ValueError, RuntimeError):
                pass

    def _handler(self, signum: int, frame) -> None:
        self.pending.append(signum)

    def take(self) -> list[int]:
        try:
            while os.read(self.r, 512):
                pass
        except BlockingIOError:
            pass
        out, self.pending = self.pending, []
        return out

    def close(self) -> None:
        """Give the process its own signal handling back (it may be a library
        caller's, not ours)."""
        for s, old in self.old_handlers.items():
            try:
                signal.signal(s, old if old is not None else signal.SIG_DFL)
            except (OSError, ValueError, RuntimeError):
                pass
        signal.set_wakeup_fd(self.old_wakeup)
        os.close(self.r)
        os.close(self.w)


def wait_foreground(pid: int, fwd: Forwarder, master: int | None = None) -> int:
    """Serve the container until its process `pid` exits; returns 128+N for a signal."""
    import gc
    gc.enable()  # this may run for days
    proxy = None
    if master is not None:
        from ..terminal import Proxy
        proxy = Proxy(master)
    try:
        while True:
            status = _reap(pid)
            if status is not None:
                if proxy is not None:
                    proxy.drain()
                return exit_status(status)
            fds = [fwd.r] + (proxy.fds() if proxy else [])
            try:
                ready, _, _ = select.select(fds, [], [], None if proxy is None else 1.0)
            except InterruptedError:
                ready = []
            for s in fwd.take():
                if s == signal.SIGCHLD:
                    continue
                if s == signal.SIGWINCH:
                    if proxy is not None:
                        proxy.resize()
                    continue
                try:
                    os.kill(pid, s)
                except ProcessLookupError:
                    pass
            if proxy is not None:
                proxy.pump([fd for fd in ready if fd != fwd.r])
    finally:
        if proxy is not None:
            proxy.close()


def _reap(pid: int) -> int | None:
    """Reap every exited child (we are a subreaper); the status of `pid` if it exited."""
    result = None
    while True:
        try:
            p, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return result if result is not None else (0 if not _alive(pid) else None)
        if p == 0:
            return result
        if p == pid:
            result = status


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
