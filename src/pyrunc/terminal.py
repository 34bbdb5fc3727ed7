"""Container terminals: pty allocation, fd passing and the foreground proxy.

When ``process.terminal`` is true, runc (and so pyrunc) gives the container a
fresh pseudo-terminal allocated *inside* the container's own devpts, and hands
the master side to whoever drives the container.  This module holds every piece
of that, stdlib only (``fcntl.ioctl`` reaches the few ioctls Python lacks):

Inside the container init (after /dev/pts is mounted in the new mount ns)::

    master, slave, path = open_pty()            # /dev/pts/ptmx, unlocked
    if size: set_window_size(master, rows, cols)  # process.consoleSize
    # the caller bind-mounts `path` (or /proc/self/fd/<slave>) on /dev/console
    send_fd(sync_sock, master, MASTER_NAME)       # to the runtime parent
    os.close(master)
    setup_slave_as_stdio(slave)                   # setsid, TIOCSCTTY, dup2 0/1/2
    os.close(slave)

In the runtime parent::

    master, _name = recv_fd(sync_sock)
    # detached (create / run -d / exec -d): give it away, as runc does
    send_to_console_socket(path, master)   # or connect_console_socket() early
    # foreground (run / exec without -d): relay it, see Proxy below

runc compatibility of the console socket protocol (runc internal/cmsg): one
``sendmsg`` on a connected AF_UNIX stream socket carrying exactly one fd in a
single SCM_RIGHTS message, with the master's *file name* as the data bytes
(runc 1.1 sends ``/dev/ptmx``, newer runc ``/dev/pts/ptmx``; receivers such as
containerd, conmon and recvtty read but do not interpret it).  The name must
not be empty: a zero-length stream sendmsg carries no data, and receivers that
treat a 0-byte read as EOF would miss the fd.

Foreground proxy design (``Proxy``): a single-threaded ``poll`` relay that never
busy-loops.  It owns the host terminal state (raw mode, restored in ``close``
and, if nobody else handles them, before SIGINT/SIGTERM/SIGHUP/SIGQUIT kill
us), forwards SIGWINCH by copying our window size onto the master (once at
start as well), and pumps stdin->master and master->stdout.  It does not reap
or forward signals itself; ``step(timeout, extra_fds)`` lets the caller add its
own fds (typically the read end of ``signal.set_wakeup_fd``) and learn which
became readable, so one loop can do signal forwarding, reaping and I/O::

    with Proxy(master) as p:
        while not init_exited:
            if wake_r in p.step(None, [wake_r]):
                ...read signal numbers, forward them, waitpid(WNOHANG)...
        p.drain()   # the rest of the output after the process is gone

A caller with its own select loop can use ``fds()`` (watch for reading),
``wants_write`` (then watch the master for writing) and ``pump(ready)``
instead of ``step``; both styles start the proxy on first use.

Signals: install your own handlers (runc's ``run`` forwards every signal to
the container) *before* ``Proxy.start``.  The proxy takes SIGWINCH (it resizes
in the handler; set ``forward_winch=False`` to do it yourself via ``resize``),
takes the fatal signals only while they still have their default action, and
``close`` leaves any handler installed after it in place.  Python runs
handlers between bytecodes, so a signal landing just before ``poll`` would
wait for the next I/O: with no wakeup fd set, the proxy sets its own and polls
it; if the caller has one, the caller must pass it to ``step`` or ``select``.

EOF: the master is read until it reports EOF/EIO (every slave fd closed, i.e.
the container's processes are gone); ``drain`` also stops after a short idle
time so that a daemon left holding the slave (possible with exec) cannot keep
us waiting forever.

Imports: only C modules (``_socket``, ``_signal``, ``select``, ``termios``,
``fcntl``), all at module level, so nothing is imported lazily after the init
has sealed imports at pivot_root, and no enum/selectors start-up cost.
"""

from __future__ import annotations

import _signal as signal  # the C modules: no enum/selectors import cost
import _socket as socket
import errno
import fcntl
import os
import select
import stat
import struct
import termios
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import FrameType

__all__ = [
    "TerminalError",
    "MASTER_NAME",
    "open_pty",
    "setup_slave_as_stdio",
    "set_window_size",
    "get_window_size",
    "clear_onlcr",
    "make_raw",
    "send_fd",
    "recv_fd",
    "connect_console_socket",
    "send_to_console_socket",
    "Proxy",
    "proxy",
]


class TerminalError(Exception):
    """A terminal operation failed; the message is one line for the user."""


#: The name sent along with the master fd (runc sends the master's file name).
MASTER_NAME = "/dev/pts/ptmx"

#: runc's cmsg.MaxNameLen: longest name accepted alongside a passed fd.
MAX_NAME_LEN = 4096

_PTMX_MAJOR, _PTMX_MINOR = 5, 2  # TTYAUX_MAJOR, mknod_ptmx
_PTS_MAJOR = 136  # UNIX98_PTY_SLAVE_MAJOR


def _ioc_numbers() -> tuple[int, int, int, int]:
    """(none, write, read, size bits) of _IOC for this architecture."""
    machine = os.uname().machine
    if machine.startswith(("ppc", "powerpc", "mips", "sparc", "alpha")):
        return 1, 4, 2, 13
    return 0, 1, 2, 14


def _ioc(direction: int, nr: int, size: int) -> int:
    """Build a 'T' ioctl request number (linux/asm-generic/ioctl.h)."""
    return (direction << (16 + _IOC_SIZEBITS)) | (size << 16) | (ord("T") << 8) | nr


_IOC_NONE, _IOC_WRITE, _IOC_READ, _IOC_SIZEBITS = _ioc_numbers()
TIOCGPTN = _ioc(_IOC_READ, 0x30, 4)  # _IOR('T', 0x30, unsigned int)
TIOCSPTLCK = _ioc(_IOC_WRITE, 0x31, 4)  # _IOW('T', 0x31, int)
TIOCGPTPEER = _ioc(_IOC_NONE, 0x41, 0)  # _IO('T', 0x41), Linux >= 4.13

_WINSZ = struct.Struct("HHHH")  # struct winsize: row, col, xpixel, ypixel


def _msg(op: str, exc: OSError) -> str:
    """Go-style one-line error text: 'op: no such file or directory'."""
    text = exc.strerror or str(exc)
    return f"{op}: {text[:1].lower()}{text[1:]}"


def _close(fd: int | None) -> None:
    """Close an fd, ignoring errors (cleanup paths only)."""
    if fd is not None and fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


# --------------------------------------------------------------------------
# pty allocation (container side)


def open_pty(ptmx: str = MASTER_NAME) -> tuple[int, int, str]:
    """Allocate a pty pair from the devpts instance holding `ptmx`.

    Returns (master fd, slave fd, slave path); both fds are close-on-exec and
    O_NOCTTY, so nothing becomes our controlling terminal by accident.  The
    slave is taken with TIOCGPTPEER (no path lookup that a container could
    race) and, on kernels without it, by /dev/pts/N checked against the
    expected device number.  The ptmx must be a real 5:2 device on the same
    devpts as the slave, which rules out a planted node or a host devpts.
    """
    flags = os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC | os.O_NOFOLLOW
    try:
        master = os.open(ptmx, flags)
    except OSError as e:
        raise TerminalError(_msg(f"open {ptmx}", e)) from None
    slave = -1
    try:
        mst = os.fstat(master)
        if not stat.S_ISCHR(mst.st_mode) or mst.st_rdev != os.makedev(_PTMX_MAJOR, _PTMX_MINOR):
            raise TerminalError(f"open {ptmx}: not a ptmx device")
        try:
            (num,) = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))
            fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))  # unlockpt
        except OSError as e:
            raise TerminalError(_msg(f"{ptmx}: allocate pty", e)) from None
        pts_dir = os.path.dirname(ptmx)
        if os.path.basename(pts_dir) != "pts":
            pts_dir = os.path.join(pts_dir, "pts")
        path = os.path.join(pts_dir, str(num))
        try:
            slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.ENOTTY):
                raise TerminalError(_msg(f"{ptmx}: get pty peer", e)) from None
            try:
                slave = os.open(path, flags)
            except OSError as e2:
                raise TerminalError(_msg(f"open {path}", e2)) from None
        sst = os.fstat(slave)
        if not stat.S_ISCHR(sst.st_mode) or sst.st_rdev != os.makedev(_PTS_MAJOR, num):
            raise TerminalError(f"{path}: not the pty peer of {ptmx}")
        if sst.st_dev != mst.st_dev:
            raise TerminalError(f"{ptmx}: not on the devpts that holds {path}")
        return master, slave, path
    except BaseException:
        _close(slave)
        _close(master)
        raise


def setup_slave_as_stdio(slave_fd: int) -> None:
    """Make the pty slave our controlling terminal and fds 0, 1 and 2.

    Called in the process that will exec the container process: it becomes a
    session leader (setsid, unless it already is one) so that TIOCSCTTY can
    attach the slave; job control and ^C inside the container depend on it.
    The caller still owns `slave_fd` and closes it (if it is above 2).
    """
    try:
        if os.getsid(0) != os.getpid():
            os.setsid()
    except OSError as e:
        raise TerminalError(_msg("setsid", e)) from None
    try:
        fcntl.ioctl(slave_fd, termios.TIOCSCTTY, 0)
    except OSError as e:
        raise TerminalError(_msg("ioctl(setctty)", e)) from None
    try:
        for fd in (0, 1, 2):
            if fd != slave_fd:
                os.dup2(slave_fd, fd, inheritable=True)
            else:
                os.set_inheritable(fd, True)
    except OSError as e:
        raise TerminalError(_msg("dup2 console", e)) from None


def set_window_size(fd: int, rows: int, cols: int) -> None:
    """Set a tty's size (TIOCSWINSZ); on a master it resizes the slave and
    sends SIGWINCH to the slave's foreground process group."""
    if not (0 <= rows <= 0xFFFF and 0 <= cols <= 0xFFFF):
        raise TerminalError(f"invalid console size {rows}x{cols}")
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, _WINSZ.pack(rows, cols, 0, 0))
    except OSError as e:
        raise TerminalError(_msg("set console size", e)) from None


def get_window_size(fd: int) -> tuple[int, int]:
    """Return a tty's (rows, cols) (TIOCGWINSZ)."""
    try:
        rows, cols, _, _ = _WINSZ.unpack(fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * _WINSZ.size))
    except OSError as e:
        raise TerminalError(_msg("get console size", e)) from None
    return rows, cols


def clear_onlcr(fd: int) -> None:
    """Turn off NL->CRNL on a pty (runc does this on the master it relays:
    the host terminal does that translation itself, once)."""
    try:
        attrs = termios.tcgetattr(fd)
        attrs[1] &= ~termios.ONLCR
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except (OSError, termios.error) as e:
        raise TerminalError(f"clear onlcr: {_termios_text(e)}") from None


def make_raw(fd: int) -> list:
    """Put a terminal in raw mode the way runc (containerd/console) does,
    keeping OPOST so our NL->CRNL still happens; returns the old attributes
    for ``termios.tcsetattr(fd, termios.TCSANOW, old)``."""
    try:
        old = termios.tcgetattr(fd)
        new = [old[0], old[1], old[2], old[3], old[4], old[5], list(old[6])]
        new[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
                    | termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
        new[1] |= termios.OPOST
        new[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
        new[2] &= ~(termios.CSIZE | termios.PARENB)
        new[2] |= termios.CS8
        new[6][termios.VMIN] = 1
        new[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, new)
    except (OSError, termios.error) as e:
        raise TerminalError(f"failed to set the terminal from the stdin: {_termios_text(e)}") from None
    return old


def _termios_text(e: Exception) -> str:
    """One-line text of a termios.error (args are (errno, strerror))."""
    if isinstance(e, OSError):
        return _msg("", e)[2:]
    if len(e.args) == 2 and isinstance(e.args[1], str):
        return e.args[1][:1].lower() + e.args[1][1:]
    return str(e)


# --------------------------------------------------------------------------
# fd passing (runc internal/cmsg compatible)


def _as_socket(sock: socket.socket | int) -> tuple[socket.socket, bool]:
    """Wrap a raw fd in a socket object without taking ownership of it."""
    if isinstance(sock, socket.socket):
        return sock, False
    return socket.socket(fileno=sock), True


def send_fd(sock: socket.socket | int, fd: int, name: str = MASTER_NAME) -> None:
    """Send `fd` over a unix socket with `name` as the data (runc SendRawFd)."""
    data = name.encode()
    if not data or len(data) >= MAX_NAME_LEN:
        raise TerminalError(f"sendfd: invalid file name {name!r}")
    s, borrowed = None, False
    try:
        s, borrowed = _as_socket(sock)
        sent = s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))])
        if sent != len(data):  # the fd went with the first byte; finish the name
            s.sendall(data[sent:])
    except OSError as e:
        raise TerminalError(_msg("sendfd", e)) from None
    finally:
        if borrowed and s is not None:
            s.detach()


def recv_fd(sock: socket.socket | int) -> tuple[int, str]:
    """Receive one fd sent by ``send_fd`` or runc; returns (fd, name).

    The fd arrives close-on-exec.  Anything but exactly one fd in one
    SCM_RIGHTS message is an error, and surplus fds are closed, as runc does.
    """
    s, borrowed = None, False
    try:
        s, borrowed = _as_socket(sock)
        data, anc, flags, _ = s.recvmsg(MAX_NAME_LEN, socket.CMSG_SPACE(4 * 8), socket.MSG_CMSG_CLOEXEC)
    except OSError as e:
        raise TerminalError(_msg("recvfd", e)) from None
    finally:
        if borrowed and s is not None:
            s.detach()
    fds: list[int] = []
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(struct.unpack(f"{usable // 4}i", payload[:usable]))
    problem = ""
    if flags & socket.MSG_CTRUNC:
        problem = "recvfd: control message truncated"
    elif not fds and not data:
        problem = "recvfd: connection closed before a file descriptor was received"
    elif len(anc) != 1 or len(fds) != 1:
        problem = f"recvfd: expected 1 file descriptor, got {len(fds)}"
    elif len(data) >= MAX_NAME_LEN:
        problem = "recvfd: file name too long"
    if problem:
        for fd in fds:
            _close(fd)
        raise TerminalError(problem)
    return fds[0], data.decode(errors="replace")


def connect_console_socket(path: str) -> socket.socket:
    """Connect to the user's --console-socket (do it before creating anything,
    so that a bad path fails early, as in runc)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise TerminalError(_msg(f"console socket {path}", e)) from None
    if not stat.S_ISSOCK(st.st_mode):
        raise TerminalError(f"console socket {path}: not a socket")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise TerminalError(_msg(f"console socket {path}", e)) from None
    return s


def send_to_console_socket(path: str | socket.socket, master_fd: int, name: str = MASTER_NAME) -> None:
    """Give the pty master to the --console-socket listener, as runc does.

    `path` may be a socket from ``connect_console_socket``; it is closed here
    either way, since runc sends exactly one fd per connection.
    """
    s = connect_console_socket(path) if isinstance(path, str) else path
    try:
        send_fd(s, master_fd, name)
    finally:
        s.close()


# --------------------------------------------------------------------------
# foreground proxy

_FATAL_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
_CHUNK = 65536
_MAX_PENDING = 1 << 20  # stop reading stdin while this much waits for the pty


def _isatty(fd: int | None) -> bool:
    """isatty that tolerates closed fds."""
    try:
        return fd is not None and os.isatty(fd)
    except OSError:
        return False


class Proxy:
    """Relay between our stdin/stdout and a container's pty master.

    The host terminal is the first tty among stdin and stdout; with
    ``require_tty`` and none of them a tty, /dev/tty is used or, failing that,
    ``start`` raises "open /dev/tty: no such device or address" as runc does
    (by default the relay just runs without raw mode and resizing).

    Use as a context manager (``start``/``close``).  Call ``step`` in a loop;
    it waits in ``poll`` (no busy loop) for the master, stdin and any extra
    fds you pass, moves whatever data is ready and returns the extra fds that
    are readable.  ``master_closed`` turns true at EOF/EIO on the master.
    """

    def __init__(
        self,
        master_fd: int,
        *,
        stdin_fd: int | None = 0,
        stdout_fd: int = 1,
        raw: bool = True,
        clear_onlcr: bool = True,
        forward_winch: bool = True,
        restore_on_signals: bool = True,
        require_tty: bool = False,
    ) -> None:
        self.master_fd = master_fd
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.master_closed = False
        self.stdin_closed = stdin_fd is None
        self.stdout_broken = False
        # The host terminal: the one whose size we copy and which goes raw.
        self.host_tty: int | None = next((fd for fd in (stdin_fd, stdout_fd) if _isatty(fd)), None)
        self._own_tty = False
        self._require_tty = require_tty
        self._raw = raw
        self._clear_onlcr = clear_onlcr
        self._forward_winch = forward_winch
        self._restore_on_signals = restore_on_signals
        self._saved_termios: list | None = None
        self._saved_handlers: dict[int, object] = {}
        self._master_was_blocking: bool | None = None
        self._pending = bytearray()
        self._started = False
        self._wake_r = self._wake_w = -1

    # -- lifecycle

    def __enter__(self) -> "Proxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> "Proxy":
        """Prepare the master and host terminal; safe to call once."""
        if self._started:
            return self
        self._started = True
        try:
            if self.host_tty is None and self._require_tty:
                # runc's rule: with no terminal on stdio, use our controlling one.
                try:
                    self.host_tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
                    self._own_tty = True
                except OSError as e:
                    raise TerminalError(_msg("open /dev/tty", e)) from None
            if self._clear_onlcr:
                clear_onlcr(self.master_fd)
            self._master_was_blocking = os.get_blocking(self.master_fd)
            os.set_blocking(self.master_fd, False)
            self._install_handlers()
            self._install_wakeup_fd()
            if self._raw and self.host_tty is not None:
                self._saved_termios = make_raw(self.host_tty)
            self.resize()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Restore the host terminal, signal handlers and master flags.
        Idempotent; the master fd itself stays open (the caller owns it)."""
        self.restore_terminal()
        for sig, old in self._saved_handlers.items():
            try:
                current = signal.getsignal(sig)
                # Leave alone a handler the caller installed after us.
                if getattr(current, "__self__", None) is self:
                    signal.signal(sig, old)
            except (ValueError, TypeError, OSError):
                pass
        self._saved_handlers.clear()
        if self._wake_w >= 0:
            try:
                current = signal.set_wakeup_fd(-1)
                if current != self._wake_w:
                    signal.set_wakeup_fd(current)  # the caller's now: leave it
            except ValueError:
                pass
            _close(self._wake_r)
            _close(self._wake_w)
            self._wake_r = self._wake_w = -1
        if self._own_tty and self.host_tty is not None:
            _close(self.host_tty)
            self.host_tty, self._own_tty = None, False
        if self._master_was_blocking is not None:
            try:
                os.set_blocking(self.master_fd, self._master_was_blocking)
            except OSError:
                pass
            self._master_was_blocking = None

    def restore_terminal(self) -> None:
        """Put the host terminal back as we found it (idempotent)."""
        saved, self._saved_termios = self._saved_termios, None
        if saved is not None and self.host_tty is not None:
            try:
                termios.tcsetattr(self.host_tty, termios.TCSANOW, saved)
            except (OSError, termios.error):
                pass

    def _install_handlers(self) -> None:
        """SIGWINCH -> resize; fatal signals nobody handles -> restore, die."""
        wanted: list[tuple[int, Callable[[int, FrameType | None], None]]] = []
        if self._forward_winch:
            wanted.append((signal.SIGWINCH, self._on_winch))
        if self._restore_on_signals:
            for name in _FATAL_SIGNALS:
                sig = getattr(signal, name)
                current = signal.getsignal(sig)
                if current in (signal.SIG_DFL, signal.default_int_handler):
                    wanted.append((sig, self._on_fatal))
        for sig, handler in wanted:
            try:
                self._saved_handlers[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread: the caller handles it
                pass

    def _install_wakeup_fd(self) -> None:
        """Make signals wake our poll.  Python runs handlers between bytecodes,
        so a signal landing just before poll() would wait for the next I/O;
        a wakeup fd in the poll set closes that race.  If the caller already
        has one, it is theirs to pass to ``step`` in `extra_fds`."""
        try:
            current = signal.set_wakeup_fd(-1)
            if current != -1:
                signal.set_wakeup_fd(current)
                return
            r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            signal.set_wakeup_fd(w, warn_on_full_buffer=False)
            self._wake_r, self._wake_w = r, w
        except ValueError:  # not the main thread
            pass

    def _on_winch(self, signum: int, frame: FrameType | None) -> None:
        self.resize()

    def _on_fatal(self, signum: int, frame: FrameType | None) -> None:
        """Die of the signal as we would have, but with the terminal sane."""
        self.restore_terminal()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    def resize(self) -> None:
        """Copy the host terminal's size to the master; errors are ignored
        (stdout may be gone already, as runc notes)."""
        if self.host_tty is None or self.master_closed:
            return
        try:
            rows, cols = get_window_size(self.host_tty)
            if rows or cols:
                set_window_size(self.master_fd, rows, cols)
        except TerminalError:
            pass

    # -- data pump

    def step(self, timeout: float | None = None, extra_fds: Iterable[int] = ()) -> set[int]:
        """Wait up to `timeout` seconds (None: forever) for I/O, move data,
        and return the subset of `extra_fds` that is readable (or hung up).

        Returns at once with an empty set when nothing is left to wait for.
        """
        self.start()
        extra = list(extra_fds)
        poller = select.poll()
        want_master = not self.master_closed
        if want_master:
            ev = select.POLLIN | (select.POLLOUT if self._pending else 0)
            poller.register(self.master_fd, ev)
        want_stdin = want_master and not self.stdin_closed and len(self._pending) < _MAX_PENDING
        if want_stdin:
            poller.register(self.stdin_fd, select.POLLIN)  # type: ignore[arg-type]  # want_stdin: not closed, so an fd
        for fd in extra:
            poller.register(fd, select.POLLIN)
        if not (want_master or extra):
            return set()
        if self._wake_r >= 0:
            poller.register(self._wake_r, select.POLLIN)
        ms = None if timeout is None else max(0, int(timeout * 1000))
        ready: set[int] = set()
        for fd, ev in poller.poll(ms):
            if fd == self.master_fd and want_master:
                if ev & select.POLLOUT:
                    self._flush_pending()
                if ev & (select.POLLIN | select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    self._read_master()
            elif fd == self.stdin_fd and want_stdin:
                self._read_stdin()
            elif fd == self._wake_r:
                self._empty_wake_pipe()
            if fd in extra:
                ready.add(fd)
        return ready

    # The same pump for a caller that runs its own select/poll: watch fds()
    # for reading (and the master for writing while wants_write), then hand
    # the ready ones to pump().  Both start the proxy if needed.

    def fds(self) -> list[int]:
        """The fds to watch for reading: master and stdin while open."""
        self.start()
        out: list[int] = []
        if not self.master_closed:
            out.append(self.master_fd)
            if not self.stdin_closed and len(self._pending) < _MAX_PENDING:
                out.append(self.stdin_fd)  # type: ignore[arg-type]  # not closed: an fd
        if self._wake_r >= 0:
            out.append(self._wake_r)
        return out

    @property
    def wants_write(self) -> bool:
        """True while typed input waits for room in the pty."""
        return bool(self._pending) and not self.master_closed

    def pump(self, ready: Iterable[int]) -> None:
        """Move the data of the fds (from ``fds()``) that are ready."""
        self.start()
        ready = set(ready)
        if self.wants_write:
            self._flush_pending()
        if self.master_fd in ready and not self.master_closed:
            self._read_master()
        if self.stdin_fd in ready and not self.stdin_closed and not self.master_closed:
            self._read_stdin()
        if self._wake_r >= 0 and self._wake_r in ready:
            self._empty_wake_pipe()

    def _empty_wake_pipe(self) -> None:
        try:
            while os.read(self._wake_r, 256):
                pass
        except OSError:
            pass

    def drain(self, idle: float = 0.1, limit: float = 2.0) -> None:
        """Copy what is left on the master after the process exited: until
        EOF/EIO, or `idle` seconds without output, or `limit` seconds."""
        self._pending.clear()
        end = time.monotonic() + limit
        while not self.master_closed:
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                ready = select.poll()
                ready.register(self.master_fd, select.POLLIN)
                if not ready.poll(int(min(idle, left) * 1000)):
                    break
            except OSError:
                break
            self._read_master()

    def _read_master(self) -> None:
        try:
            data = os.read(self.master_fd, _CHUNK)
        except BlockingIOError:
            return
        except OSError as e:  # EIO: every slave fd is closed
            self.master_closed = True
            if e.errno not in (errno.EIO, errno.EBADF):
                raise TerminalError(_msg("read console", e)) from None
            return
        if not data:
            self.master_closed = True
            return
        self._write_stdout(data)

    def _write_stdout(self, data: bytes) -> None:
        """Write all of `data` (waiting if stdout is non-blocking); if stdout
        is gone, keep discarding so the container never blocks on the pty."""
        view = memoryview(data)
        while view and not self.stdout_broken:
            try:
                n = os.write(self.stdout_fd, view)
                view = view[n:]
            except BlockingIOError:
                waiter = select.poll()
                waiter.register(self.stdout_fd, select.POLLOUT)
                waiter.poll()
            except OSError:
                self.stdout_broken = True

    def _read_stdin(self) -> None:
        try:
            data = os.read(self.stdin_fd, _CHUNK)  # type: ignore[arg-type]  # polled: not closed, an fd
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.stdin_closed = True
            return
        self._pending += data
        self._flush_pending()

    def _flush_pending(self) -> None:
        try:
            while self._pending:
                n = os.write(self.master_fd, self._pending)
                del self._pending[:n]
        except BlockingIOError:
            pass
        except OSError:  # the container side is gone; its output says the rest
            self._pending.clear()


def proxy(
    master_fd: int,
    *,
    stdin_fd: int | None = 0,
    stdout_fd: int = 1,
    wake_fd: int | None = None,
    on_wake: Callable[[], bool] | None = None,
    **options: bool,
) -> None:
    """Relay a pty master to our stdio until the container is done.

    Without `wake_fd` this returns when the master reports EOF/EIO.  With it
    (e.g. the read end of ``signal.set_wakeup_fd``), `on_wake()` runs each
    time it is readable (it must read the fd) and returns True once the
    container process has exited; the remaining output is then drained.
    `options` go to ``Proxy`` (raw, clear_onlcr, forward_winch, ...).
    """
    extra = [wake_fd] if wake_fd is not None else []
    with Proxy(master_fd, stdin_fd=stdin_fd, stdout_fd=stdout_fd, **options) as p:
        while True:
            if not extra and p.master_closed:
                return
            if wake_fd in p.step(None, extra):
                if on_wake is None or on_wake():
                    break
        p.drain()
