"""The parent's handle on the stage child, forked as early as it can be.

`pyrunc create` and `run` fork the stage child right after parsing the
command line, before the parent imports its own modules, reads config.json,
takes the state dir and finds the cgroups. The child spends that time, on the
other core, importing what the init will need (init/child.py: stage_entry);
then it waits for its arguments, which the parent sends as plain data
(marshal) with their fds over the sync channel. Forking at the last moment
instead left the imports on the critical path of every start.

The library (pyrunc.Container) forks once the config is checked, before
the state dir and the cgroup (container/launch.py: _fork_stage); the protocol
is the same.
"""
from __future__ import annotations

import os

from .sync import Channel, Msg

# a SEQPACKET packet is read into 64 KiB; bigger arguments go in a memfd
_INLINE_MAX = 60000


class Stage:
    __slots__ = ("pid", "ch", "sent")

    def __init__(self, pid: int, ch: Channel) -> None:
        self.pid = pid
        self.ch = ch
        self.sent = False

    @staticmethod
    def preload_shared(run: bool) -> None:
        """Import, before the early fork, the modules both sides need: the
        parent to validate and send (InitArgs, the config checks, JSON), the
        child for the init. Imported after the fork they were loaded twice,
        once per process (about 1.5 ms of CPU); imported before, once, and
        each process only copies the pages it writes. The parent of `run`
        also needs the syscall layer (the subreaper); `create`'s does not,
        so there the child alone loads it, in parallel."""
        import fcntl  # noqa: F401
        from .. import fastjson  # noqa: F401
        from ..security import attrs, lsm  # noqa: F401
        from ..spec import config  # noqa: F401
        from . import child  # noqa: F401
        if run:
            from ..linux import sys  # noqa: F401

    @classmethod
    def fork(cls, preserve_fds: int = 0, stdio: tuple[int, int, int] | None = None,
             early: tuple | None = None) -> "Stage":
        """Fork the stage child. It keeps only stdio, the caller's
        `preserve_fds` fds from 3 on (they become the container's), the
        channel and our log: the init it forks waits for `start` for as long
        as the container lives, and any other descriptor of the caller it
        held (a shell's `$(...)` pipe, an engine's) would stay open as long.
        Both callers fork before they take the state dir's lock, so none of
        their own fds is among the preserved ones. `stdio`: fds that
        become the container's 0, 1 and 2 in place of ours (a shim's FIFOs).
        `early`: the library's (namespaces, seccomp) for init/child.py's
        early_namespaces, or None."""
        import gc
        import _socket
        ps, cs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        keep_below = 3 + max(0, preserve_fds)
        # no copy-on-write of the objects a collection would touch; a caller
        # that froze its own (the shim's zygote: everything it imported, shared
        # with the shims it forks) keeps them so, and we add nothing to them
        ours = not gc.get_freeze_count()
        if ours:
            gc.freeze()
        pid = os.fork()
        if pid == 0:
            try:
                if stdio is not None:
                    use_stdio(stdio)
                ps.close()
                if cs.fileno() < keep_below:  # not among the container's fds
                    import fcntl
                    moved = fcntl.fcntl(cs.fileno(), fcntl.F_DUPFD_CLOEXEC, keep_below)
                    cs.close()
                    cs = _socket.socket(fileno=moved)
                from .. import log
                close_fds_from(keep_below, (cs.fileno(), log.fd()))
                from .child import stage_entry
                stage_entry(Channel(cs), early)
            finally:
                os._exit(1)
        # a long-lived caller (the library) would otherwise keep every object
        # of this moment out of reach of the collector for good
        if ours:
            gc.unfreeze()
        cs.close()
        return cls(pid, Channel(ps))

    def start(self, args) -> None:
        """Send the child its InitArgs. OSError if it is gone (it reported
        why on the channel first)."""
        payload, fds = args.wire()
        self.sent = True
        if len(payload) <= _INLINE_MAX:
            self.ch.send(Msg.ARGS, payload, fds)
            return
        mfd = os.memfd_create("pyrunc-args", os.MFD_CLOEXEC)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(mfd, view):]
            self.ch.send(Msg.ARGS, b"", fds + [mfd])
        finally:
            os.close(mfd)

    def abandon(self) -> None:
        """The command ended before it sent the arguments: EOF tells the child
        to exit, and it is reaped. Once they are sent, create() owns it.
        An init it forked already (the library's early namespaces) sees the
        same EOF: its pid is read from the channel until that closes, and
        it is reaped if it is ours (a subreaper's orphan)."""
        if self.sent:
            return
        import _socket
        try:
            self.ch.sock.shutdown(_socket.SHUT_WR)
        except OSError:
            pass
        init = 0
        while True:  # until every holder of the other end is gone
            tag, payload, fds = self.ch.recv()
            for fd in fds:
                os.close(fd)
            if tag == Msg.EOF:
                break
            if tag == Msg.INIT_PID:
                init = int(payload)
        self.ch.close()
        for pid in {self.pid, init} - {0}:  # the same pid without a pid namespace
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def use_stdio(stdio: tuple[int, int, int]) -> None:
    """Make `stdio` this (forked) process's fds 0, 1 and 2: copied above 2
    first, so that one of them being 0-2 already cannot be overwritten."""
    import fcntl
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3) for fd in stdio]
    for target, fd in enumerate(high):
        os.dup2(fd, target)
        os.close(fd)


def close_fds_from(first: int, keep: tuple[int | None, ...] = ()) -> None:
    """Close every fd from `first` up, except those in `keep` (close_range
    under os.closerange: a few syscalls whatever the fd limit)."""
    lo = first
    for fd in sorted(k for k in keep if k is not None and k >= first):
        if fd > lo:
            os.closerange(lo, fd)
        lo = max(lo, fd + 1)
    os.closerange(lo, 0x7FFFFFFF)
