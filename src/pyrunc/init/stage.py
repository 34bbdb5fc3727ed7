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
             early: tuple | None = None, pidns: bool = False) -> "Stage":
        """Fork the stage child. It keeps only stdio, the caller's
        `preserve_fds` fds from 3 on (they become the container's), the
        channel and our log: the init it forks waits for `start` for as long
        as the container lives, and any other descriptor of the caller it
        held (a shell's `$(...)` pipe, an engine's) would stay open as long.
        Both callers fork before they take the state dir's lock, so none of
        their own fds is among the preserved ones. `stdio`: fds that
        become the container's 0, 1 and 2 in place of ours (a shim's FIFOs).
        `early`: the library's (namespaces, seccomp) for init/child.py's
        early_namespaces, or None. `pidns` (with `early`): the container
        gets a new pid namespace; we try to fork the child into it
        ourselves (enter_pid_ns_for_children), so that the child is the
        init, its PID 1, and no second fork is needed; the child learns
        whether that worked from `early`'s third item."""
        import gc
        import _socket
        ps, cs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        keep_below = 3 + max(0, preserve_fds)
        # no copy-on-write of the objects a collection would touch; a caller
        # that froze its own (the shim's zygote: everything it imported, shared
        # with the shims it forks) keeps them so, and we add nothing to them
        ours = not gc.get_freeze_count()
        own = enter_pid_ns_for_children() if pidns and early is not None else -1
        if early is not None:
            early = (*early, own >= 0)
        if ours:
            gc.freeze()
        try:
            pid = os.fork()
        except BaseException:  # EAGAIN, ENOMEM: nothing of ours left changed
            if ours:
                gc.unfreeze()
            ps.close()
            cs.close()
            if own >= 0:
                leave_pid_ns_for_children(own)
            raise
        if pid:
            run_beside(pid)  # first: until then it waits for our CPU
        else:
            try:
                forget_wakeup_fd()
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
        stage = cls(pid, Channel(ps))
        if own >= 0:
            try:
                leave_pid_ns_for_children(own)
            except OSError as e:  # never seen: setns to one's own namespace
                stage.abandon()
                from ..errors import PyruncError
                raise PyruncError(f"cannot return to pyrunc's pid namespace: {os.strerror(e.errno or 0)}") from None
        return stage

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
                init = int(payload) or self.pid  # 0: we forked the init itself
        self.ch.close()
        for pid in {self.pid, init} - {0}:  # the same pid without a pid namespace
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def enter_pid_ns_for_children() -> int:
    """Make a new pid namespace for the next child of this thread only
    (unshare(CLONE_NEWPID) changes this thread's pid_for_children, no other
    thread's, and never our own pid namespace). Returns an fd on the pid
    namespace this thread's children were in, to come back to, or -1:
    refused (no privilege; or a caller whose thread has unshared a pid
    namespace of its own, which the kernel does not nest this way), and
    the stage child makes it then, as for the command line."""
    from ..linux import consts as LC, sys as L
    try:
        own = os.open("/proc/thread-self/ns/pid_for_children", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return -1
    try:
        L.unshare(LC.CLONE_NEWPID)
    except OSError:
        os.close(own)
        return -1
    return own


def leave_pid_ns_for_children(own: int) -> None:
    """This thread's later children in our own pid namespace again."""
    from ..linux import consts as LC, sys as L
    try:
        L.setns(own, LC.CLONE_NEWPID)
    finally:
        os.close(own)


def run_beside(pid: int) -> None:
    """Start the child on another CPU than the one we run on. The parent
    and the stage child work at the same time (our host preparation, its
    start and namespaces), but a scheduler that packs tasks onto few CPUs
    (as virtual machines' kernels may: sched_vcpu_pack) runs the new child
    on our CPU after us, in series. The init's own mask is reset to every
    CPU once it joins its cgroup (container/launch.py: on_init_pid, runc's
    tryResetCPUAffinity), so the container inherits nothing of this; the
    kernel picks among the other CPUs. A failure changes nothing."""
    try:
        cpus = os.sched_getaffinity(0)
        if len(cpus) < 2:
            return
        # os calls, not linux/fdio.stat_fields: the command line's parent runs
        # this first thing, before it has imported any of pyrunc.linux
        fd = os.open("/proc/thread-self/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            here = int(os.read(fd, 4096).rsplit(b")", 1)[1].split()[36])  # field 39: the CPU
        finally:
            os.close(fd)
        cpus.discard(here)
        os.sched_setaffinity(pid, cpus)
    except (OSError, ValueError, IndexError):
        pass


def forget_wakeup_fd() -> None:
    """In a forked child: no signal wakeup fd, and no SIGCHLD handler of the
    caller's. Its wakeup fd (Container.run's signal forwarder, an event
    loop's) is closed here with every other fd of the caller, and the
    SIGCHLD of our own children (the seccomp builder) would make Python
    print its failed write on the container's stderr, or run the caller's
    handler, with the caller's fd numbers, in the container's init."""
    import _signal
    try:
        _signal.set_wakeup_fd(-1)
        _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
    except ValueError:  # not the main thread: cannot happen after fork
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
