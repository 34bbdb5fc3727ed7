"""What runs in the forked children: the stage child that enters or creates
the namespaces, and the container init that prepares the rootfs and, at the
end, becomes the user's process.

stage (S): joins namespaces given by path (user first, mount last), creates
the user namespace and waits while the parent writes its maps, unshares the
rest, forks the init so a new pid namespace takes effect, reports the init's
pid and exits. When no pid namespace is involved, S is the init itself;
so it is when the library's parent forked S into the new pid namespace
already (init/stage.py: enter_pid_ns_for_children).

init (I): rootfs, devices, hooks, pivot_root, hostname, sysctl, console,
masked/read-only paths; then it waits (exec fifo for `create`, a message for
`run`) and applies the process settings last, right before execve.
"""
from __future__ import annotations

import _signal
import os
import sys

from .. import log as _log  # not `log`: functions here import it locally too
from ..errors import ExecveError, PyruncError
from ..linux import consts as C
from .sync import Channel, Msg

TYPE_CHECKING = False  # typing is not imported on the start-up path
if TYPE_CHECKING:
    from ..security.seccomp import Seccomp

# setns order within each round of join_namespaces: mount last (it changes
# the file system view; the paths are all opened before any is joined)
_JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "time", "cgroup", "mount")


class InitArgs:
    """Everything the children need, prepared by the parent before fork so the
    children do as little Python work as possible."""

    __slots__ = ("spec", "rootfs", "bundle", "mode", "fifo_fd", "no_pivot", "no_new_keyring",
                 "preserve_fds", "terminal", "cid", "state_json", "cgroup_mounts", "seccomp")

    spec: dict
    rootfs: str
    bundle: str
    mode: str                 # "create" or "run"
    fifo_fd: int              # -1: no exec fifo (run)
    no_pivot: bool
    no_new_keyring: bool
    preserve_fds: int
    terminal: bool
    cid: str
    state_json: str
    cgroup_mounts: list[tuple[str, str, str]]
    seccomp: Seccomp | None

    _FDS = ("fifo_fd",)

    def __init__(self, **kw) -> None:
        # `seccomp`: security.seccomp.prepare's result, checked by the
        # caller (container/launch.py) in the parent before anything runs
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    def wire(self) -> tuple[bytes, list[int]]:
        """(marshal payload, fds to pass) for the stage child: plain data
        only, the fds as indexes into the SCM_RIGHTS list."""
        import marshal
        fds: list[int] = []
        vals = []
        for k in self.__slots__:
            v = getattr(self, k)
            if k in self._FDS:
                if v is not None and v >= 0:
                    fds.append(v)
                    v = len(fds) - 1
                else:
                    v = -1
            elif k == "seccomp" and v is not None:
                v = v.wire()
            vals.append(v)
        return marshal.dumps(tuple(vals)), fds

    @classmethod
    def from_wire(cls, payload: bytes, fds: list[int]) -> "InitArgs":
        import marshal
        a = cls.__new__(cls)
        for k, v in zip(cls.__slots__, marshal.loads(payload)):
            if k in cls._FDS:
                v = fds[v] if v >= 0 else -1
            elif k == "seccomp" and v is not None:
                from ..security.seccomp import Seccomp
                v = Seccomp.from_wire(v)
            setattr(a, k, v)
        return a


def fail(ch: Channel, e: BaseException) -> None:
    """Report an error to the parent as one line, and end this child."""
    if isinstance(e, ExecveError):
        # the process's own failure (runc 1.5): its stderr, status 255; the
        # parent sees our end of the channel close, as after an exec
        try:
            os.write(2, f"{e}\n".encode())
        except OSError:
            pass
        os._exit(255)
    if isinstance(e, PyruncError):
        msg = str(e)
    elif isinstance(e, OSError):
        msg = (e.strerror if e.filename is None else f"{e.filename}: {e.strerror}") or str(e)
    else:
        msg = f"{type(e).__name__}: {e}"
    if ch.detached:
        # the parent finished create and left: the container's stderr is
        # where an engine will look for the error
        from .. import log
        log.error(msg)
    else:
        try:
            ch.send(Msg.ERROR, msg)
        except OSError:
            pass  # the parent failed first and reports its own error
    os._exit(1)


def stage_entry(ch: Channel, early: tuple[dict[str, str], Seccomp | None, bool] | None = None) -> None:
    """Entry of the stage child, forked before the parent reads the config
    (init/stage.py): it imports what the init will need while the parent
    validates, then waits for its arguments. EOF instead means the command
    failed before a container existed: nothing to do. Never returns.
    `early`: the library's (namespaces, seccomp, pid namespace made),
    known when it forks us: the namespaces are made before the arguments
    come (early_namespaces)."""
    nss = None
    try:
        from ..linux import sys as L
        L.prctl(C.PR_SET_DUMPABLE, 0)
        L.prctl(C.PR_SET_PDEATHSIG, _signal.SIGKILL)
        conceal_command_line()
        # here, not in the init: this child never joins the container's
        # cgroup, so the memory the imports allocate is not charged to it
        preload(False, False)
        if early is not None:
            nss = early_namespaces(ch, *early)  # in the init from here on
        tag, payload, fds = ch.recv()
        if tag != Msg.ARGS:
            os._exit(0)
        if not payload and fds:  # too big for one packet: in a memfd
            payload = _read_all(fds.pop())
        a = InitArgs.from_wire(payload, fds)
        if early is not None:
            a.seccomp = early[1]  # the same profile, its builder started
    except BaseException as e:  # noqa: BLE001 - one line for the parent
        fail(ch, e)
    if nss is None:
        stage_main(ch, a)
        return
    try:
        init_main(ch, a, nss, lo_up=True)
    except BaseException as e:  # noqa: BLE001 - every failure becomes one line for the parent
        fail(ch, e)


def can_start_early(nss: dict[str, str]) -> bool:
    """Whether early_namespaces can make these namespaces: new ones only
    (none joined by path) and neither a user namespace nor a time namespace,
    whose set-up needs the parent (their maps and offsets)."""
    return "user" not in nss and "time" not in nss and not any(nss.values())


def early_namespaces(ch: Channel, nss: dict[str, str], sc: Seccomp | None,
                     in_pidns: bool = False) -> dict[str, str]:
    """stage_main's namespace work for the library's stage child, done before
    its arguments come, while the parent makes the state dir and checks the
    cgroup (can_start_early says when): seccomp's builder (in the runtime's
    namespaces but the pid one), the unshare, the init's fork and its pid,
    the loopback. Returns in the init, with the namespaces for init_main.
    `in_pidns`: the parent forked us into the container's new pid namespace
    (init/stage.py: enter_pid_ns_for_children): we are its PID 1, the init
    already, and the parent knows our pid."""
    from ..linux import sys as L
    if _log.debug_enabled():
        _log.debug("=> nsexec container setup")
    if sc is not None:
        sc.start_build()  # our child: reaped when the program is collected
        sc.open_listener(connect=False)
    flags = 0
    for t in nss:
        # cgroup: unshared once the init is in its cgroup (rootfs/setup.py)
        if t != "cgroup" and not (in_pidns and t == "pid"):
            flags |= C.NAMESPACES[t][0]
    if flags:
        L.unshare(flags)
    if _log.debug_enabled():
        _log.debug(f"<= nsexec container setup (namespaces: {' '.join(nss) or 'none new'})")
    if "pid" in nss and not in_pidns:
        pid = os.fork()
        if pid:  # as stage_main: report it and exit at once
            ch.send(Msg.INIT_PID, str(pid))
            os._exit(0)
    else:
        ch.send(Msg.INIT_PID, "0")  # this process is the init: the parent knows its pid
    if nss.get("network") == "":
        loopback_up()
    return nss


def conceal_command_line() -> None:
    """What /proc/<pid>/cmdline and /proc/<pid>/environ show of a pyrunc
    process the container can see (the waiting init is its PID 1, an exec
    joins it): the caller's whole environment (an engine's secrets) and
    command line. A container process with CAP_SYS_PTRACE reads them despite
    the non-dumpable flag. Both areas are overwritten in place, in our
    copy-on-write copy: "pyrunc init" and zeroes, as runc's init shows only
    its own name. Python read them at start-up and never again."""
    from ..linux import sys as L
    arg_start, arg_end, env_start, env_end = command_line_area()
    L.overwrite_memory(env_start, env_end - env_start)
    L.overwrite_memory(arg_start, arg_end - arg_start, b"pyrunc\0init\0")


_AREA: tuple[int, int, int, int] | None = None


def command_line_area() -> tuple[int, int, int, int]:
    """(arg_start, arg_end, env_start, env_end) of this process, fixed at
    its exec: read once, so a long-lived library caller that asks before
    it forks spares every stage child the read."""
    global _AREA
    if _AREA is None:
        from ..linux.fdio import stat_fields
        a, b, c, d = (int(x) for x in stat_fields("/proc/self/stat")[45:49])  # fields 48-51
        _AREA = (a, b, c, d)
    return _AREA


def _read_all(fd: int) -> bytes:
    try:
        size = os.fstat(fd).st_size
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def stage_main(ch: Channel, a: InitArgs) -> None:
    """The stage child's work once it has its arguments; never returns."""
    # the debug lines of the set-up carry runc's words (nsexec, init) where
    # the step is the same, for the tools and tests that look for them
    if _log.debug_enabled():
        _log.debug("=> nsexec container setup")
    try:
        from ..linux import sys as L
        sc = a.seccomp
        if sc is not None:
            sc.start_build()  # in a process of its own, while we set up
        preload(bool(a.terminal), bool(a.spec.get("hooks")),  # what the base set lacks
                (a.spec.get("linux") or {}).get("memoryPolicy") is not None)
        from ..spec.config import namespaces
        nss = namespaces(a.spec)
        if sc is not None:  # the notify agent's socket, seen from the host
            sc.open_listener(connect="user" in nss)
        # an unprivileged parent writes our /proc/<pid> files (uid_map,
        # timens_offsets) only while we are dumpable (as runc's nsexec);
        # nothing of the container exists yet to see it, and we are
        # undumpable again before anything does
        rootless = os.geteuid() != 0
        fds: dict[str, int] = {}
        for t, path in nss.items():
            if path:
                fds[t] = _open_ns(t, path)
        if fds:
            join_namespaces(fds)
        if "user" in nss and not nss["user"]:
            L.unshare(C.CLONE_NEWUSER)
            L.prctl(C.PR_SET_DUMPABLE, int(rootless))
            ch.send(Msg.USERNS)
            ch.expect(Msg.USERNS_DONE)
            L.prctl(C.PR_SET_DUMPABLE, 0)
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        flags = 0
        for t, path in nss.items():
            if not path and t not in ("user", "cgroup"):
                flags |= C.NAMESPACES[t][0]
        if flags:
            L.unshare(flags)
        if nss.get("time") == "" and (a.spec.get("linux") or {}).get("timeOffsets"):
            # before any process enters the new time namespace, by the parent:
            # the writer needs CAP_SYS_TIME over the namespace's owner and
            # write access to our /proc/<pid> (runc's SYNC_TIMEOFFSETS_PLS)
            L.prctl(C.PR_SET_DUMPABLE, int(rootless))
            ch.send(Msg.TIMENS)
            ch.expect(Msg.TIMENS_DONE)
            L.prctl(C.PR_SET_DUMPABLE, 0)
        if _log.debug_enabled():
            _log.debug(f"<= nsexec container setup (namespaces: {' '.join(nss) or 'none new'})")
        # a new pid or time namespace applies to children only
        if "pid" in nss or nss.get("time") == "":
            pid = os.fork()
            if pid:
                # and exit at once: while we live, every page the init writes
                # is copied and charged to the container's cgroup, which the
                # parent is about to join it to (the memory floor)
                ch.send(Msg.INIT_PID, str(pid))
                os._exit(0)
        else:
            ch.send(Msg.INIT_PID, str(os.getpid()))
        init_main(ch, a, nss)
    except BaseException as e:  # noqa: BLE001 - every failure becomes one line for the parent
        fail(ch, e)


def _open_ns(t: str, path: str) -> int:
    import fcntl
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise PyruncError(f"failed to open {path} for {t} namespace: {e.strerror}") from None
    try:
        nstype = fcntl.ioctl(fd, 0xB703)  # NS_GET_NSTYPE
    except OSError:
        os.close(fd)
        raise PyruncError(f"{path} is not a namespace file") from None
    if nstype != C.NAMESPACES[t][0]:
        os.close(fd)
        raise PyruncError(f"{path} is not a {t} namespace")
    return fd


def join_namespaces(fds: dict[str, int]) -> None:
    """setns into the namespaces of `fds` (type -> fd; each closed once
    joined) in runc's order (nsexec's join_namespaces): every one but the user
    namespace first, skipping those refused (EPERM); then the user namespace,
    becoming its root; then those refused before, which may need its
    privileges (rootless). A namespace its user namespace does not own (the
    host's network, say) can only be joined in the first round, while we hold
    the caller's privileges."""
    from ..linux import sys as L

    def round_() -> None:
        for t in _JOIN_ORDER:
            if t == "user" or t not in fds:
                continue
            try:
                L.setns(fds[t], C.NAMESPACES[t][0])
            except OSError as e:
                if e.errno == 1:  # EPERM: perhaps after the user namespace
                    continue
                raise PyruncError(f"failed to setns into {t} namespace: {os.strerror(e.errno or 0)}") from None
            os.close(fds.pop(t))
    round_()
    if "user" in fds:
        try:
            L.setns(fds["user"], C.CLONE_NEWUSER)
        except OSError as e:
            raise PyruncError(f"failed to setns into user namespace: {os.strerror(e.errno or 0)}") from None
        os.close(fds.pop("user"))
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        round_()
    if fds:
        names = ", ".join(C.NAMESPACES[t][1] for t in sorted(fds))
        raise PyruncError(f"failed to join {{{names}}} namespaces: {os.strerror(1)}")


def time_offsets_text(linux: dict) -> bytes:
    """/proc/<pid>/timens_offsets contents: one "clock secs nanosecs" line each."""
    offs = linux.get("timeOffsets") or {}
    return "".join(f"{clock} {int(o.get('secs', 0))} {int(o.get('nanosecs', 0))}\n"
                   for clock, o in offs.items()).encode()


def preload(terminal: bool, hooks: bool = True, mempolicy: bool = False) -> None:
    """Import everything the init will need before its root changes: after
    pivot_root an import would read files from the container's rootfs, which
    the container controls. `seal_imports` then makes any import fail."""
    import fcntl  # noqa: F401
    import select  # noqa: F401
    import time  # noqa: F401
    from .. import cgroups, fastjson, log  # noqa: F401
    if hooks:
        from .. import hooks as _h  # noqa: F401
    from ..rootfs import setup  # noqa: F401
    from ..security import attrs, capabilities, process  # noqa: F401
    capabilities.last_cap()  # read from the runtime's /proc once, and cached
    from ..spec import config  # noqa: F401
    if terminal:
        from .. import terminal as _t  # noqa: F401
    if mempolicy:
        from ..security import mempolicy as _m  # noqa: F401


_SEALED: list = []


def seal_imports() -> None:
    """Empty finders, path and hooks: nothing can be imported any more.
    Fresh objects, the old ones kept alive: emptying them in place freed
    the finders' caches of directory listings, thousands of objects whose
    pages a forked process first copies (0.4 ms of the init's set-up)."""
    _SEALED.append((sys.meta_path, sys.path, sys.path_hooks, sys.path_importer_cache))
    sys.meta_path = []
    sys.path = []
    sys.path_hooks = []
    sys.path_importer_cache = {}


def waits_at_hooks(hooks: dict) -> bool:
    """Whether the init waits at its HOOKS message for the parent's procHooks
    work (the cgroup resources, then the prestart and createRuntime hooks):
    only when a hook must follow it in runc's order (those two, then our
    createContainer). Otherwise the pivot, sysctls and masked paths, which
    open no device, overlap the resources' writes, and the wait comes
    before the console and the process's attributes."""
    return bool(hooks.get("prestart") or hooks.get("createRuntime") or hooks.get("createContainer"))


def init_main(ch: Channel, a: InitArgs, nss: dict[str, str], lo_up: bool = False) -> None:
    """The container init: prepare everything, wait, then exec. `lo_up`:
    the loopback is up already (early_namespaces)."""
    if _log.debug_enabled():
        _log.debug("child process in init()")
    from ..linux import sys as L
    spec = a.spec
    if nss.get("network") == "" and not lo_up:
        loopback_up()
    process = spec["process"]
    if a.seccomp is not None:
        a.seccomp.note_pid()  # /proc is still the runtime's
    if not a.no_new_keyring:
        label = process.get("selinuxLabel")
        if label:  # runc: the session keyring carries the process label
            from ..security import lsm
            lsm.set_key_label(label)
        join_session_keyring(a.cid)
        if label:
            lsm.set_key_label("")

    def join_cgroup() -> None:
        # the parent joins us as soon as it learns our pid, or sends the v1
        # hierarchies' `tasks` fds for us to join ourselves (Manager.join_fds)
        payload, fds = ch.expect_msg(Msg.CGROUP_JOINED)
        err, bad = 0, 0
        for i, fd in enumerate(fds):
            if not err:
                try:
                    os.write(fd, b"0")
                except OSError as e:
                    err, bad = e.errno or 5, i
            os.close(fd)
        if err:
            from ..cgroups import join_error
            names = payload.decode(errors="replace").split("\n")
            raise join_error(int(names[0]), names[bad + 1] if bad + 1 < len(names) else "tasks", err)

    hooks = spec.get("hooks") or {}
    hooks_pending = False

    def runtime_hooks() -> None:
        """runc's procHooks: the parent writes the cgroup resources, then runs
        the prestart/createRuntime hooks."""
        nonlocal hooks_pending
        ch.send(Msg.HOOKS)
        hooks_pending = True
        if waits_at_hooks(hooks):
            resources_written()

    def resources_written() -> None:
        """Wait for HOOKS_DONE: writing v1 device rules passes through
        deny-all, and the console, /dev opens, the scheduler policy (a
        realtime cgroup runtime) must not come before it is over."""
        nonlocal hooks_pending
        if hooks_pending:
            ch.expect(Msg.HOOKS_DONE)
            hooks_pending = False

    def mount_source(index: int, kind: str) -> int:
        """An fd for mounts[index]'s source from the parent ("idmap": an
        idmapped tree, "open": a plain O_PATH fd), or -1."""
        ch.send(Msg.MOUNT_SOURCE, f"{index} {kind}")
        fds = ch.expect_msg(Msg.MOUNT_SOURCE_FD)[1]
        return fds[0] if fds else -1

    def container_hooks() -> None:
        if hooks.get("createContainer"):
            from .. import hooks as H
            H.run_hooks("createContainer", hooks["createContainer"], _state_for_hooks(a, "creating"))

    from ..rootfs.setup import Rootfs, finalize
    from ..cgroups import running_in_userns  # a rootless engine's namespace too: no mknod there
    Rootfs(spec, a.rootfs, a.bundle, userns="user" in nss or running_in_userns(), cgroupns=nss.get("cgroup") == "",
           join_cgroup=join_cgroup, runtime_hooks=runtime_hooks,
           container_hooks=container_hooks, no_pivot=a.no_pivot, mount_source=mount_source,
           cgroup_mounts=a.cgroup_mounts, hostns="mount" not in nss).prepare()
    seal_imports()
    if a.terminal:
        resources_written()
        _setup_console(ch, process)
    if spec.get("hostname"):
        L.sethostname(spec["hostname"])
    if spec.get("domainname"):
        L.setdomainname(spec["domainname"])
    _sysctl((spec.get("linux") or {}).get("sysctl") or {})
    finalize(spec, a.rootfs)
    resources_written()
    os.umask(0o022)
    from ..security.process import prepare_exec
    final = prepare_exec(process, rlimits_set=True)  # the parent sets them (prlimit)
    final.seccomp = a.seccomp
    apply_attrs(process, spec.get("linux"))  # scheduler, ioPriority, personality: runc's order
    # without a new pid namespace the stage child is the init itself and still
    # carries the set-up's parent-death SIGKILL: `create` is about to exit
    L.prctl(C.PR_SET_PDEATHSIG, 0)
    ch.send(Msg.READY)
    ch.expect(Msg.CREATED if a.mode == "create" else Msg.GO)
    # as runc: ids, capabilities and no_new_privs first; the wait for `start`
    # and the startContainer hooks happen as the container's user. A failure
    # here still reaches the parent, which waits for our EOF.
    final.become()
    if _log.debug_enabled():
        _log.debug("init: closing the pipe to signal completion")
    if a.mode == "create":
        ch.detached = True
        ch.close()  # EOF: `create` is done
        from .. import log
        log.detach()  # the --log file and the runtime's stderr are the caller's
        die_on_signals()
        fd = os.open(f"/proc/self/fd/{a.fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(fd, b"0")
        os.close(fd)
        os.close(a.fifo_fd)
    # in `run` the channel stays open (close-on-exec): a failure from here to
    # execve reaches the parent as an error, a successful exec as EOF
    if hooks.get("startContainer"):
        # as runc: the hooks run under the container's seccomp filter (with
        # no_new_privs it is otherwise loaded last, right before execve) and,
        # without an env of their own, with the process's environment
        final.seccomp_now()
        from .. import hooks as H
        H.run_hooks("startContainer", hooks["startContainer"], _state_for_hooks(a, "created"),
                    default_env=final.env)
    final.exec_now(a.preserve_fds or 0)


def loopback_up() -> None:
    """A new network namespace starts with `lo` down; runc brings it up."""
    import _socket
    import fcntl
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        req = b"lo".ljust(16, b"\0") + bytes(24)
        flags = int.from_bytes(fcntl.ioctl(s.fileno(), 0x8913, req)[16:18], "little")  # SIOCGIFFLAGS
        req = b"lo".ljust(16, b"\0") + (flags | 0x1).to_bytes(2, "little") + bytes(22)  # IFF_UP
        fcntl.ioctl(s.fileno(), 0x8914, req)  # SIOCSIFFLAGS
    except OSError as e:
        raise PyruncError(f"unable to bring up the loopback interface: {os.strerror(e.errno or 0)}") from None
    finally:
        s.close()


def join_session_keyring(cid: str) -> None:
    """A fresh session keyring "_ses.<id>", searchable by its user, as runc
    makes: the container must not share the caller's keys."""
    from ..linux import sys as L
    try:
        key = L.keyctl_join_session_keyring("_ses." + cid)
    except OSError as e:
        if e.errno == 38:  # ENOSYS: no keyrings in this kernel, as runc tolerates
            return
        raise PyruncError(f"unable to join session keyring: {os.strerror(e.errno or 0)}") from None
    L.keyctl_add_perm(key, 0x080000)  # KEY_USR_SEARCH


def _state_for_hooks(a: InitArgs, status: str) -> dict:
    from ..fastjson import loads
    st = loads(a.state_json)
    st["status"] = status
    st["pid"] = os.getpid()
    return st


def _setup_console(ch: Channel, process: dict) -> None:
    from .. import terminal
    from ..linux import sys as L
    master, slave, _ = terminal.open_pty()
    size = process.get("consoleSize")
    if size:
        terminal.set_window_size(slave, size.get("height", 0), size.get("width", 0))
    from ..rootfs.paths import create_file, fd_path
    rootfd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        target = create_file(rootfd, "/dev/console", 0o666)
    finally:
        os.close(rootfd)
    try:
        L.sc.mount(fd_path(slave), fd_path(target), None, C.MS_BIND)
    finally:
        os.close(target)
    ch.send(Msg.CONSOLE, fds=[master])
    os.close(master)
    from .. import log
    log.keep_stderr()
    terminal.setup_slave_as_stdio(slave)
    if slave > 2:
        os.close(slave)


def apply_attrs(process: dict, linux: dict | None) -> None:
    """scheduler, ioPriority, personality, memoryPolicy (security/attrs.py,
    security/mempolicy.py): in runc's order, for the init and exec."""
    from ..security.attrs import apply_io_priority, apply_personality, apply_scheduler
    linux = linux or {}
    if process.get("scheduler") is not None:
        cpuset = ((linux.get("resources") or {}).get("cpu") or {}).get("cpus") or ""
        apply_scheduler(process["scheduler"], cpuset)
    if process.get("ioPriority") is not None:
        apply_io_priority(process["ioPriority"])
    if linux.get("personality") is not None:
        apply_personality(linux["personality"])
    if linux.get("memoryPolicy") is not None:  # runc: right after personality
        from ..security.mempolicy import apply
        apply(linux["memoryPolicy"])



def _sysctl(sysctl: dict) -> None:
    from ..linux.sys import open_procfs
    from ..spec.config import sysctl_path
    for key, value in sysctl.items():
        path = sysctl_path(key)
        try:
            fd = open_procfs(path)
        except OSError as e:
            raise PyruncError(f"sysctl {key}: {e.strerror}") from None
        try:
            os.write(fd, str(value).encode())
        except OSError as e:
            raise PyruncError(f"sysctl {key}={value}: {e.strerror}") from None
        finally:
            os.close(fd)


# what makes runc's waiting init (a Go program) exit: SIGHUP, SIGINT and
# SIGTERM, and with a stack dump SIGQUIT and SIGABRT
_FATAL = (_signal.SIGHUP, _signal.SIGINT, _signal.SIGTERM, _signal.SIGQUIT, _signal.SIGABRT)


def _die(signum: int, frame: object) -> None:
    os._exit(2)  # Go's dieFromSignal, where the signal itself cannot kill (PID 1)


def die_on_signals() -> None:
    """The init waiting for `start` stops on a terminating signal, as runc's
    does: as PID 1 of its pid namespace it would otherwise ignore every
    signal but SIGKILL (no handler, no delivery), so `kill ID TERM` or a
    pidfd's SIGTERM on a created container did nothing. execve resets the
    handlers (linux.sys.reset_signals also does)."""
    for s in _FATAL:
        _signal.signal(s, _die)


if __name__ == "__main__":  # pragma: no cover - not an entry point
    sys.exit("pyrunc.init.child is not a command")
