"""A warm fork server for new shims (the "zygote").

containerd runs `<shim> start` for every new container group and then waits
for the shim it names to answer Create. A Python shim pays its interpreter
and its imports there (about 20 ms here before the server answers, and a
first Create that finds half the library not yet imported), where Go's shim
pays a few milliseconds. So the first `start` for a containerd also launches
a zygote: a single-threaded process that imported the shim's server and the
library's create path once, and waits on a socket. Later `start`s connect to
it first thing (its first word has the zygote warm the cgroup migration
lock: pyrunc.cgroups.rearm_migration), then hand it their bound listening
socket, bundle, flags and environment; the zygote passes them on to a spare,
a shim it forked ahead of time that waits on a socket pair for exactly this,
answers with the spare's pid, and forks the next spare. The new shim is
warm: nothing to import, its pages shared with the zygote's until written
(the zygote froze its objects for the collector, and they stay frozen).

One zygote serves one containerd (keyed by containerd's address and the
installed code, so an upgrade gets a new one). It exits when that containerd
exits, after PYRUNC_SHIM_ZYGOTE_IDLE seconds without a request and without a
live shim of its own (default 600), or on SIGTERM. PYRUNC_SHIM_ZYGOTE_IDLE=0
in containerd's environment turns it off: every `start` then forks its
server itself, as before. A shim forked here is the same as one forked by
`start`: its own session, /dev/null stdio, the bundle as cwd, containerd's
environment, and start's command line (written over the zygote's, which
is padded for it), so `ps` and containerd's tooling see the usual shim.
"""
from __future__ import annotations

import os
import sys

import _socket as socket

TYPE_CHECKING = False  # typing's import would cost `start` a millisecond
if TYPE_CHECKING:
    import socket as std_socket

from pyrunc.shim.process import SOCKET_ROOT, ShimError, can_connect, leave_session, sha256

DEFAULT_IDLE = 600.0
IDLE_ENV = "PYRUNC_SHIM_ZYGOTE_IDLE"
# room for a shim's command line (interpreter, launcher, containerd's
# flags with ids and paths) over the zygote's: its argv is padded to this
TITLE_ROOM = 2048
MAX_REQUEST = 1 << 20
# the next spare is forked this long after a request took one (a request
# in between gets a shim forked for it): not on the cores the container
# just asked for is starting on
SPARE_DELAY = 0.05


def idle_seconds(env: dict[str, str] | os._Environ) -> float:
    """The zygote's idle timeout from containerd's environment (0: none)."""
    text = env.get(IDLE_ENV, "")
    if not text:
        return DEFAULT_IDLE
    try:
        value = float(text)
    except ValueError:
        return DEFAULT_IDLE
    return value if value >= 0 else 0.0


def launcher_argv() -> list[str]:
    """How this process was started up to the shim's own flags: the
    interpreter and its options and the launcher script (or -m module)."""
    own = len(sys.argv) - 1
    return list(sys.orig_argv[:len(sys.orig_argv) - own]) if own else list(sys.orig_argv)


def zygote_path(containerd_address: str) -> str:
    """The zygote's socket for this containerd and this installed code."""
    try:
        st = os.stat(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "__init__.py"))
        code = f"{st.st_ino}:{st.st_mtime_ns}"
    except OSError:
        code = "?"
    key = "\0".join([containerd_address, code, *launcher_argv()])
    return f"{SOCKET_ROOT}/pyrunc-zygote-{sha256(key.encode()).hexdigest()[:32]}"


def is_zygote_path(path: str) -> bool:
    """A path zygote_path could have made (the zygote binds nothing else)."""
    name = path[len(SOCKET_ROOT) + 1:] if path.startswith(SOCKET_ROOT + "/") else ""
    digest = name[len("pyrunc-zygote-"):] if name.startswith("pyrunc-zygote-") else ""
    return len(digest) == 32 and all(c in "0123456789abcdef" for c in digest)


# -- the client side (in `start`) -------------------------------------------------------

def connect(path: str) -> socket.socket | None:
    """A connection to the zygote at `path`, or None. Its first message
    asks the zygote to warm the cgroup migration lock at once (see
    pyrunc.cgroups.rearm_migration): `start` connects before its own work,
    so that the lock's grace period, 8-16 ms here, is under way the
    earliest we know a container is coming; the request follows."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    s.settimeout(5)
    try:
        s.connect(path)
        s.send(b"warm")
        return s
    except OSError:
        s.close()
        return None


def fork_shim(s: socket.socket | None, listener: socket.socket, flags: dict[str, object], bundle: str,
              address: str) -> int | None:
    """Ask the zygote on connection `s` (connect's) for a shim serving
    `listener`: its pid, or None when no zygote answers (the caller then
    forks one itself)."""
    from pyrunc.fastjson import dumps
    if s is None:
        return None
    try:
        request = dumps({"flags": flags, "bundle": bundle, "address": address, "title": sys.orig_argv,
                         "env": dict(os.environ), "umask": _umask()}).encode()
        try:
            s.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, listener.fileno().to_bytes(4, sys.byteorder))])
            reply = s.recv(4096)
        except OSError:
            return None  # a zygote on its way out: fork here
    finally:
        s.close()
    kind, _, text = reply.decode(errors="replace").partition(" ")
    if kind == "pid" and text.isdigit():
        return int(text)
    if kind == "err":
        raise ShimError(text)
    return None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def launch(path: str, idle: float) -> int:
    """Start a zygote in the background for the next `start`s (it binds
    `path` once its imports are done; the loser of a race exits): its pid,
    0 if it could not be started."""
    argv = [*launcher_argv(), "zygote", path, str(os.getppid()), f"{idle:g}"]
    pad = TITLE_ROOM - sum(len(a.encode()) + 1 for a in argv) - 1
    argv.append(" " * max(pad, 1))
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        return os.posix_spawn(argv[0] if os.path.isabs(argv[0]) else sys.executable, argv, dict(os.environ),
                              setsid=True, file_actions=[(os.POSIX_SPAWN_DUP2, null, 0),
                                                         (os.POSIX_SPAWN_DUP2, null, 1),
                                                         (os.POSIX_SPAWN_DUP2, null, 2)])
    except OSError:
        return 0  # no zygote: `start` forks its shims itself
    finally:
        os.close(null)


# -- the zygote ---------------------------------------------------------------------------

def set_cmdline(argv: list[str]) -> bool:
    """Write `argv` over this process's command line (/proc/self/cmdline:
    the kernel reads it from the argv strings' memory), NUL-padded to the
    original length; False (nothing written) if it does not fit."""
    import ctypes
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48, 49)
    except (OSError, IndexError, ValueError):
        return False
    data = b"\0".join(a.encode(errors="surrogateescape") for a in argv) + b"\0"
    if not start or end - start < len(data):
        return False
    ctypes.memmove(start, data.ljust(end - start, b"\0"), end - start)
    return True


def preload() -> None:
    """Everything a shim's server and its first Create import, once."""
    import dataclasses  # noqa: F401
    import gc
    import queue  # noqa: F401
    import signal  # noqa: F401
    import socket as _  # noqa: F401
    import threading  # noqa: F401

    import pyrunc
    import pyrunc.cgroups.devices  # noqa: F401
    import pyrunc.cgroups.resources  # noqa: F401
    import pyrunc.container.container  # noqa: F401
    import pyrunc.container.exec  # noqa: F401
    import pyrunc.linux.ffi  # noqa: F401
    import pyrunc.rootfs.options  # noqa: F401
    import pyrunc.rootfs.paths  # noqa: F401
    import pyrunc.rootfs.setup  # noqa: F401
    import pyrunc.security.capabilities  # noqa: F401
    import pyrunc.security.process  # noqa: F401
    import pyrunc.spec.schema  # noqa: F401
    from pyrunc.shim import events, logger, messages, mounts, service, stdio, ttrpc  # noqa: F401
    pyrunc.Container  # noqa: B018 - the lazy attribute's import
    service._preload()
    gc.collect()
    gc.freeze()  # what is imported stays: no collector writes into shared pages


def serve_zygote(path: str, watch_pid: int, idle: float) -> int:
    """The zygote's loop: bind `path`, fork a shim per request, exit when
    the watched containerd is gone or after `idle` seconds of nothing."""
    import select
    import signal
    import time
    preload()
    os.chdir("/")
    listener = _bind(path)
    if listener is None:
        return 0  # another zygote serves this containerd
    try:
        watch = os.pidfd_open(watch_pid)
    except OSError:
        listener.close()
        _unlink(path)
        return 0
    wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    children: set[int] = set()
    ino = _inode(path)
    last = time.monotonic()
    own = (listener, watch, wake_r, wake_w)
    spare = _fork_spare(own)
    spare_due = 0.0  # when to fork the next spare (0: none due)
    try:
        while not stop:
            now = time.monotonic()
            if _reap(children, spare):
                spare, spare_due = None, now + SPARE_DELAY  # died unasked
            if spare is None and spare_due and now >= spare_due:
                spare, spare_due = _fork_spare(own), 0.0
            timeout = None
            if idle and not children:
                timeout = max(0.0, last + idle - now)
                if timeout == 0:
                    break
            if spare_due:
                timeout = max(0.0, spare_due - now) if timeout is None else min(timeout, max(0.0, spare_due - now))
            ready, _, _ = select.select([listener.fileno(), watch, wake_r], [], [], timeout)
            if watch in ready or _inode(path) != ino:
                break  # containerd is gone, or the socket was removed or taken over
            if wake_r in ready:
                try:
                    os.read(wake_r, 512)
                except BlockingIOError:
                    pass
            if listener.fileno() in ready:
                last = time.monotonic()
                pid = _serve_one(listener, own, spare)
                if pid:
                    children.add(pid)
                    if spare is not None and pid == spare.pid:
                        spare.sock.close()  # before the fork: the next spare must not inherit it
                        spare = None
                if spare is None and not spare_due:  # used, or died: the next one a little later
                    spare_due = time.monotonic() + SPARE_DELAY
    finally:
        _unlink(path, ino)
        listener.close()
        if spare is not None:
            spare.sock.close()  # it exits on the end of file
    return 0


def _bind(path: str) -> "std_socket.socket | None":
    """Bind the zygote's socket, replacing a dead zygote's; None when a
    live one answers there (serialized: two zygotes racing over a stale
    socket must not both unlink and bind). Never an abstract socket: any
    root process in the host's network namespace, a host-network
    container's too, could reach one (CVE-2020-15257)."""
    import errno
    import fcntl
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    # the sockets' directory is the lock: it stays, a lock file would not
    lock = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        import socket as std_socket
        s = std_socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            s.bind(path)
        except OSError as e:
            if e.errno != errno.EADDRINUSE or can_connect(path, socket.SOCK_SEQPACKET):
                s.close()
                return None
            _unlink(path)
            s.bind(path)
        os.chmod(path, 0o600)
        s.listen(64)
        return s
    finally:
        os.close(lock)


def _inode(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return 0


def _unlink(path: str, ino: int = 0) -> None:
    """Remove the socket file (only if it is still ours, when `ino` is given)."""
    try:
        if not ino or os.stat(path).st_ino == ino:
            os.unlink(path)
    except OSError:
        pass


def _reap(children: set[int], spare: "_Spare | None") -> bool:
    """Collect exited shims; True if the spare was among them."""
    spare_gone = False
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return spare_gone
        if not pid:
            return spare_gone
        children.discard(pid)
        if spare is not None and pid == spare.pid:
            spare_gone = True


class _Spare:
    """A shim forked ahead of its request, waiting on a socket pair for it:
    `start` then waits for neither the fork nor the child's first steps."""

    def __init__(self, pid: int, sock: "std_socket.socket") -> None:
        self.pid = pid
        self.sock = sock


def _fork_spare(own: tuple) -> _Spare | None:
    import socket as std_socket
    ours, theirs = std_socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        pid = os.fork()
    except OSError:
        ours.close()
        theirs.close()
        return None
    if pid == 0:
        _spare_wait(theirs, (*own, ours))
    theirs.close()
    return _Spare(pid, ours)


def _spare_wait(sock: "std_socket.socket", own: tuple) -> None:
    """In the spare: leave the zygote's session, fds and signals, then
    wait for a request; the zygote's end closing ends it."""
    code = 0
    try:
        _detach(own)
        title = list(sys.orig_argv)
        if "zygote" in title:  # room for the longer word: the padding is last
            title[title.index("zygote")] = "zygote-spare"
            title[-1] = title[-1][:-len("-spare")]
            set_cmdline(title)
        request, fd = _receive(sock)
        sock.close()
        if request is None or fd is None:
            os._exit(0)
        _serve_request(request, fd)  # never returns
    except BaseException:
        code = 1
    os._exit(code)


def _serve_one(listener: "std_socket.socket", own: tuple, spare: _Spare | None) -> int:
    """Accept one request and hand it to the spare (or a shim forked for
    it); the reply is the shim's pid (or one line of error)."""
    try:
        conn, _ = listener.accept()
    except OSError:
        return 0
    pid = 0
    fd = None
    try:
        conn.settimeout(5)
        cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        if int.from_bytes(cred[4:8], sys.byteorder) != os.getuid():
            return 0
        if conn.recv(16) == b"warm":  # start's first word, before its own work
            from pyrunc.cgroups import rearm_migration
            rearm_migration()
        request, fd = _receive(conn)
        if request is None or fd is None:
            conn.send(b"err bad request to the shim's zygote")
            return 0
        if spare is not None and _hand_over(spare, request, fd):
            pid = spare.pid
        else:
            pid = os.fork()
            if pid == 0:
                _detach((*own, conn.fileno(), *((spare.sock,) if spare else ())))
                _serve_request(request, fd)
        conn.send(f"pid {pid}".encode())
        return pid
    except OSError:
        return pid
    finally:
        if fd is not None:
            os.close(fd)
        conn.close()


def _receive(sock) -> tuple[dict | None, int | None]:
    """One request (JSON) and the listening socket's fd that came with it."""
    import array

    from pyrunc.fastjson import loads
    data, ancdata, _flags, _ = sock.recvmsg(MAX_REQUEST, socket.CMSG_SPACE(4 * 4))
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(payload[:len(payload) - len(payload) % a.itemsize])
            fds.extend(a)
    if len(fds) != 1 or not data:
        for fd in fds:
            os.close(fd)
        return None, None
    try:
        request = loads(data)
    except ValueError:
        os.close(fds[0])
        return None, None
    return (request if isinstance(request, dict) else None), fds[0]


def _hand_over(spare: _Spare, request: dict, fd: int) -> bool:
    from pyrunc.fastjson import dumps
    try:
        spare.sock.sendmsg([dumps(request).encode()],
                           [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))])
        return True
    except OSError:
        return False  # the spare died: fork one for this request


def _detach(own: tuple) -> None:
    """In a forked child: the zygote's signals, fds and session left."""
    import signal
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    for item in own:
        try:
            os.close(item if isinstance(item, int) else item.detach())
        except OSError:
            pass
    leave_session()


def _serve_request(request: dict, listen_fd: int) -> None:
    """Turn into the shim `start` would have forked (its command line,
    bundle, umask and environment), serve, and never return."""
    code = 1
    try:
        title = [str(a) for a in request["title"]]
        if not set_cmdline(title):  # longer than the room: what tells shims apart
            flags = request["flags"]
            set_cmdline([*launcher_argv(), "-namespace", str(flags.get("namespace")),  # ours is start's
                         "-id", str(flags.get("id")), "start"])
        sys.argv = title
        os.chdir(request["bundle"])
        os.umask(int(request["umask"]))
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in request["env"].items()})
        from pyrunc.shim import process
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC, fileno=listen_fd)
        code = process.serve(listener, request["flags"], request["bundle"], request["address"])
    except BaseException:
        code = 1
    finally:
        os._exit(code)
