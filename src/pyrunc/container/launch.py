"""The runtime parent's half of `create` and `run`.

In phases: the named checks (CHECKS), the host preparation (prepare_host:
state dir, cgroup, exec fifo), the stage child's start, the Handshake (one
handler per sync message: user namespace maps, cgroup join, runtime hooks,
mount sources, the terminal master) until the init reports ready, and the
finish. Any failure on either side undoes everything: the init is killed and
reaped, the cgroup and the state dir removed.
"""
from __future__ import annotations

import os
import time

from .. import log
from ..errors import InitError, PyruncError
from ..fastjson import dumps
from ..spec import config as spec_config
from ..init.sync import Msg
from .state import OCI_VERSION, StateDir, oci_state, proc_start_time, rfc3339nano

TYPE_CHECKING = False  # typing is not imported on the start-up path
if TYPE_CHECKING:
    from _socket import socket
    from collections.abc import Callable
    from typing import Protocol

    from ..cgroups import Manager
    from ..init.stage import Stage
    from ..init.sync import Channel
    from ..security.seccomp import Seccomp

    class StateOptions(Protocol):
        """What _complete_state reads of the options (create's; restore's)."""
        systemd_cgroup: bool
        no_new_keyring: bool


class CreateOptions:
    __slots__ = ("bundle", "pid_file", "console_socket", "no_pivot", "no_new_keyring",
                 "preserve_fds", "mode", "detach", "pidfd_socket", "after_join", "stage", "rootless",
                 "systemd_cgroup", "config", "stdio")

    def __init__(self, bundle: str = ".", pid_file: str = "", console_socket: str = "",
                 no_pivot: bool = False, no_new_keyring: bool = False, preserve_fds: int = 0,
                 mode: str = "create", detach: bool = True, pidfd_socket: str = "",
                 rootless: str = "auto", systemd_cgroup: bool = False) -> None:
        self.bundle = bundle
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds
        self.mode = mode
        self.detach = detach
        self.pidfd_socket = pidfd_socket
        self.rootless = rootless  # --rootless: true, false or auto
        self.systemd_cgroup = systemd_cgroup  # --systemd-cgroup: a systemd unit holds the cgroup
        # run in the parent once the init is joined to its cgroup, while the
        # init mounts (a foreground run loads what its end needs there)
        self.after_join: Callable[[], None] | None = None
        # the stage child, if the command line forked it early (init/stage.py)
        self.stage: Stage | None = None
        # the library's config dict, in place of <bundle>/config.json
        self.config: dict | None = None
        # the library's fds for the container's stdin, stdout, stderr (else ours)
        self.stdio: tuple[int, int, int] | None = None


class Launched:
    """The result of a successful create: the init pid, the state, and for a
    foreground run the channel to release the init and the terminal master."""

    def __init__(self, sd: StateDir, state: dict, ch, master: int | None, cgroup) -> None:
        self.sd = sd
        self.state = state
        self.pid: int = state["pid"]
        self.ch = ch
        self.master = master
        self.cgroup = cgroup


# -- the create path ---------------------------------------------------------------
#
# create() runs four phases over one _Create (what is being made, and what of
# it exists so far, for the undo): the checks (nothing exists yet), the host
# preparation (state dir, cgroup, rootfs bind, exec fifo), the start of the
# stage child and the handshake with it (Handshake: one handler per message
# type of init/sync.py's Msg), and the finish (pid file, console socket,
# pidfd, the create's release). Any failure after the state dir exists runs
# _undo_create.


class _Create:
    """One create in progress: its inputs, what the checks derived, and what
    exists so far (the undo reads it)."""

    def __init__(self, root: str, cid: str, o: CreateOptions) -> None:
        self.root, self.cid, self.o = root, cid, o
        self.bundle = os.path.abspath(o.bundle or ".")
        self.spec: dict = spec_config.load_config(self.bundle) if o.config is None else o.config
        self.linux: dict = {}
        self.nss: dict = {}
        self.process: dict = {}
        self.netdevs = None
        self.seccomp: Seccomp | None = None
        self.terminal = False
        self.console: socket | None = None  # the connected --console-socket
        # made by the host preparation (create() makes sd first)
        self.sd: StateDir | None = None
        self.cg: Manager | None = None
        self.rootless = False
        self.state: dict = {}
        self.host_bind = 0  # the rootfs bound onto itself: no mount namespace (rootfs/hostns.py)
        self.fifo_fd = -1
        # the children and the channel
        self.stage: Stage | None = None  # the library's, forked by create() (_fork_stage)
        self.pid_s = 0
        self.init_pid = 0
        self.ch: Channel | None = None  # the stage child's start makes it
        self.master: int | None = None
        self.applied = False  # the cgroup resources are written


def create(root: str, cid: str, o: CreateOptions) -> Launched:
    """Make the container: checks, host preparation, the init's set-up
    (Handshake), the finish; everything made is undone on any failure."""
    c = _Create(root, cid, o)
    validate(c)
    if o.stage is None:  # the library: fork now (the command line did already)
        _fork_stage(c)
    try:
        if o.console_socket:  # connect first: a bad socket fails before anything exists
            from ..terminal import connect_console_socket
            c.console = connect_console_socket(o.console_socket)
        c.sd = StateDir(root, cid)
        c.sd.create()
    except BaseException:
        _close_console(c)
        _abandon_stage(c)
        raise
    try:
        prepare_host(c)
        _start_stage(c)
        Handshake(c).serve()
        _finish(c)
        if log.debug_enabled():
            log.debug(f"{o.mode}: container {cid} created, init pid {c.init_pid}")
        return Launched(c.sd, c.state, c.ch, c.master, c.cg)
    except BaseException as e:
        _abandon_stage(c)  # not yet started (the undo ends a started one)
        _undo_create(c)
        if isinstance(e, OSError) and not isinstance(e, PyruncError):
            why = e.strerror or str(e)  # OSError("text") has no strerror
            raise PyruncError(_creation_error(o.mode, why if not e.filename else f"{e.filename}: {why}")) from None
        raise


# -- phase 1: the checks, in order, before anything exists ---------------------------

def _check_config(c: _Create) -> None:
    spec_config.validate(c.spec, c.bundle)
    c.linux = c.spec.get("linux") or {}
    c.nss = spec_config.namespaces(c.spec)
    c.process = c.spec["process"]


def _check_namespaces(c: _Create) -> None:
    if "time" in c.nss or "timeOffsets" in c.linux or c.nss.get("user"):
        from ..spec import nsrules
        nsrules.validate(c.linux, c.nss)


def _check_process_attrs(c: _Create) -> None:
    from ..security import attrs
    attrs.validate(c.process, c.spec.get("linux"))


def _check_net_devices(c: _Create) -> None:
    c.netdevs = c.linux.get("netDevices")
    if c.netdevs:
        from . import netdev
        netdev.validate(c.linux, c.nss)


def _check_seccomp(c: _Create) -> None:
    if c.linux.get("seccomp"):
        from ..security.seccomp import prepare
        c.seccomp = prepare(c.spec, cid=c.cid, bundle=c.bundle, oci_version=OCI_VERSION)


def _check_terminal(c: _Create) -> None:
    c.terminal = bool(c.process.get("terminal"))
    if c.terminal and c.o.detach and not c.o.console_socket:
        raise PyruncError("cannot allocate tty if pyrunc will detach without setting console socket")
    if c.o.console_socket and not c.terminal:
        raise PyruncError("cannot use console socket if pyrunc will not detach or allocate tty")


def _check_preserve_fds(c: _Create) -> None:
    if c.o.preserve_fds < 0:
        raise PyruncError("--preserve-fds must not be negative")


# (name, check): run in this order; each raises the error the user sees (the
# names are for readers and tests: the messages say what failed)
CHECKS: tuple = (
    ("config", _check_config),
    ("namespaces", _check_namespaces),
    ("process attributes", _check_process_attrs),
    ("network devices", _check_net_devices),
    ("seccomp", _check_seccomp),
    ("terminal", _check_terminal),
    ("preserve fds", _check_preserve_fds),
)


def validate(c: _Create) -> None:
    for _name, check in CHECKS:
        check(c)


# -- phase 2: the host preparation ---------------------------------------------------

def prepare_host(c: _Create) -> None:
    """The cgroup manager (checked, not yet made unless rootless), the state
    record, the rootfs bind of a container without a mount namespace, and
    the exec fifo of `create`. _undo_create removes what exists."""
    from ..cgroups import is_rootless, new_manager
    o, linux = c.o, c.linux
    c.rootless = is_rootless(o.rootless)
    mgr = new_manager(linux.get("cgroupsPath") or "", c.cid, c.rootless, o.systemd_cgroup,
                      c.spec.get("annotations"))
    mgr.check(linux.get("resources") or {}, linux.get("devices"))  # before anything runs
    try:
        mgr.check_unused()
    except PyruncError as e:
        raise PyruncError(_creation_error(o.mode, str(e))) from None
    c.cg = mgr  # from here on a failure removes it: not one that was in use
    sd = c.sd
    assert sd is not None  # create() made it
    c.state = {
        "ociVersion": c.spec.get("ociVersion") or OCI_VERSION, "id": c.cid, "pid": 0,
        "bundle": c.bundle, "rootfs": spec_config.rootfs_path(c.spec, c.bundle),
        "created": rfc3339nano(time.time_ns()), "owner": "", "annotations": c.spec.get("annotations") or {},
    }
    if "mount" not in c.nss:  # the host's: the mounts land there
        from ..rootfs import hostns
        c.host_bind = c.state["host_mount"] = hostns.bind_rootfs(
            c.state["rootfs"], linux.get("rootfsPropagation"),
            record=lambda mnt_id: _record_plan(sd, {**c.state, "host_mount": mnt_id}, mgr, o))
    if c.rootless:  # the hierarchies we may use decide what the init mounts
        _record_plan(sd, c.state, mgr, o)
        mgr.create()
    if o.mode == "create":
        c.fifo_fd = _make_exec_fifo(sd, linux)


def _make_exec_fifo(sd: StateDir, linux: dict) -> int:
    """The fifo `start` opens to release the init; an O_PATH fd for the init."""
    os.mkfifo(sd.fifo, 0o622)
    # as runc: exact bits whatever the umask, owned by the container's
    # root, which opens it for writing from inside its user namespace
    os.chmod(sd.fifo, 0o622)
    os.chown(sd.fifo, _host_id(linux.get("uidMappings")), _host_id(linux.get("gidMappings")))
    return os.open(sd.fifo, os.O_PATH | os.O_CLOEXEC)


def _fork_stage(c: _Create) -> None:
    """The library's stage child, forked once the config is checked and
    before the state dir, the console socket and the cgroup exist (none of
    their fds is ours to hand it): its start (the fork's copy-on-write
    faults, hiding the command line, the imports) runs on the other core
    while we prepare the host, as the command line's early fork does."""
    from ..init.child import can_start_early, command_line_area, preload
    from ..init.stage import Stage
    # what the init needs, imported here once for every later create,
    # not in each stage child (0.3 ms of its start, on the create's path)
    preload(c.terminal, bool(c.spec.get("hooks")), c.linux.get("memoryPolicy") is not None)
    command_line_area()  # read once per process, not by each stage child
    # the common case (new namespaces, no user or time namespace): the
    # child makes them and forks the init before its arguments come
    early = (c.nss, c.seccomp) if can_start_early(c.nss) else None
    c.stage = Stage.fork(preserve_fds=c.o.preserve_fds, stdio=c.o.stdio, early=early, pidns="pid" in c.nss)


def _abandon_stage(c: _Create) -> None:
    """create() failed before our stage child had its arguments: it exits
    on EOF and is reaped (Stage.abandon; once they are sent, _undo_create
    ends it). The command line's stage child is the command line's."""
    if c.stage is not None:
        c.stage.abandon()


def _start_stage(c: _Create) -> None:
    """Send the stage child its arguments (forking it now for the library),
    then make the cgroup while it unshares and forks the init."""
    from ..init.child import InitArgs
    o, sd, cg = c.o, c.sd, c.cg
    assert sd is not None and cg is not None  # the host preparation made them
    args = InitArgs(spec=c.spec, rootfs=c.state["rootfs"], bundle=c.bundle, mode=o.mode, fifo_fd=c.fifo_fd,
                    no_pivot=o.no_pivot, no_new_keyring=o.no_new_keyring,
                    preserve_fds=o.preserve_fds, terminal=c.terminal, cid=c.cid,
                    cgroup_mounts=cg.mount_sources(),  # the init mounts the cgroup tree from this
                    seccomp=c.seccomp, state_json=dumps(oci_state({**c.state, "pid": 0}, "creating")))
    stage = o.stage or c.stage
    assert stage is not None  # the command line's, or create()'s _fork_stage
    c.pid_s, c.ch = stage.pid, stage.ch
    try:
        stage.start(args)
    except OSError:
        _child_died(c)
    if c.fifo_fd >= 0:
        os.close(c.fifo_fd)
        c.fifo_fd = -1
    # while the stage child unshares and forks the init. The first
    # cgroup.procs write (ours, or the pre-arm thread's from the command
    # line) waits for an RCU grace period holding cgroup_mutex, and mkdir
    # waits for it too: this is where that wait is hidden. Nothing else
    # comes first: the init's first wait is for its join (CGROUP_JOINED),
    # which needs these directories
    if not c.rootless:
        _record_plan(sd, c.state, cg, o)
        cg.create()


def _reply(c: _Create, tag: str, payload: bytes | str = b"", fds: list[int] | None = None) -> None:
    """Answer the child; if it is gone, raise what it said last."""
    assert c.ch is not None  # the stage child's start made it
    try:
        c.ch.send(tag, payload, fds)
    except OSError:
        _child_died(c)


def _child_died(c: _Create) -> None:
    """The child is gone (a send failed): its last word (an error) is what counts."""
    assert c.ch is not None  # the stage child's start made it
    while True:
        t, payload, _ = c.ch.recv()
        if t == Msg.ERROR:
            raise _init_error(c.o.mode, payload) from None
        if t == Msg.EOF:
            raise _init_died(c.o.mode, c.cg) from None


# -- phase 3: the handshake ----------------------------------------------------------

# what the stage child sends, or what ends the handshake: taken as it comes
_BEFORE_INIT_PID = frozenset({Msg.USERNS, Msg.TIMENS, Msg.INIT_PID, Msg.ERROR, Msg.EOF})


class Handshake:
    """The parent's side of the set-up: it serves the children's messages
    (init/sync.py's Msg), one handler per type, until the init is READY. A
    handler returns True when the handshake is over."""

    def __init__(self, c: _Create) -> None:
        self.c = c
        self.handlers = {
            Msg.USERNS: self.on_userns, Msg.TIMENS: self.on_timens, Msg.INIT_PID: self.on_init_pid,
            Msg.HOOKS: self.on_hooks, Msg.MOUNT_SOURCE: self.on_mount_source,
            Msg.CONSOLE: self.on_console, Msg.READY: self.on_ready, Msg.ERROR: self.on_error,
            Msg.EOF: self.on_eof,
        }

    def serve(self) -> None:
        """The stage child reports the init's pid after its fork, and the
        init runs on meanwhile: its own requests (a mount source, which
        needs its pid) can come first. They wait for INIT_PID, in order."""
        ch = self.c.ch
        assert ch is not None  # the stage child's start made it
        held: list[tuple[str, bytes, list[int]]] = []
        try:
            while True:
                if held and self.c.init_pid:
                    tag, payload, fds = held.pop(0)
                else:
                    tag, payload, fds = ch.recv()
                    if not self.c.init_pid and tag not in _BEFORE_INIT_PID and tag in self.handlers:
                        held.append((tag, payload, fds))
                        continue
                handler = self.handlers.get(tag)
                if handler is None:
                    for fd in fds:
                        os.close(fd)
                    raise PyruncError(_creation_error(self.c.o.mode, f"unexpected sync message {tag!r} "
                                                                      "from the container's init"))
                if handler(payload, fds):
                    return
        finally:
            for _, _, fds in held:  # a failure before the init's pid: nothing kept open
                for fd in fds:
                    os.close(fd)

    def reply(self, tag: str, payload: bytes | str = b"", fds: list[int] | None = None) -> None:
        _reply(self.c, tag, payload, fds)

    def on_userns(self, payload: bytes, fds: list[int]) -> bool:
        _write_id_maps(self.c.pid_s, self.c.linux)
        self.reply(Msg.USERNS_DONE)
        return False

    def on_timens(self, payload: bytes, fds: list[int]) -> bool:
        try:
            _write_time_offsets(self.c.pid_s, self.c.linux)
        except PyruncError as e:
            raise PyruncError(_creation_error(self.c.o.mode, str(e))) from None
        self.reply(Msg.TIMENS_DONE)
        return False

    def on_init_pid(self, payload: bytes, fds: list[int]) -> bool:
        """Join the init to the cgroup at once (it waits for CGROUP_JOINED
        only where it needs the cgroup: its cgroup mounts, a cgroup
        namespace), then record the state while the init mounts."""
        c = self.c
        if c.init_pid:  # one init per create: never join another pid
            raise PyruncError(_creation_error(c.o.mode, "unexpected second init pid from the stage child"))
        c.init_pid = int(payload) or c.pid_s  # 0: the stage child is the init
        try:
            assert c.cg is not None  # the host preparation made it
            join, files = c.cg.join_fds(c.init_pid)
        except PyruncError as e:
            raise PyruncError(_creation_error(c.o.mode, str(e))) from None
        try:  # with the files' names and its pid, for the init's error text
            self.reply(Msg.CGROUP_JOINED, "\n".join([str(c.init_pid)] + files), join)
        finally:
            for fd in join:
                os.close(fd)
        if c.o.after_join is not None:  # the parent's own work, while the init mounts
            c.o.after_join()
        from ..security import attrs
        attrs.reset_affinity(c.init_pid)  # runc's tryResetCPUAffinity
        if c.init_pid != c.pid_s:
            os.waitpid(c.pid_s, 0)
            c.pid_s = 0
        if c.netdevs:  # runc: setupNetworkDevices, from the parent
            from . import netdev
            try:
                c.state["netDevices"] = netdev.move_in(c.netdevs, f"/proc/{c.init_pid}/ns/net")
            except PyruncError as e:
                raise PyruncError(_creation_error(c.o.mode, f"error creating network interfaces: {e}")) from None
        # everything the state records is known now: write it while the
        # init mounts (a failure later removes the whole dir)
        _complete_state(c.state, c.init_pid, c.cg, c.nss, c.spec, c.o)
        assert c.sd is not None  # create() made it
        c.sd.save(c.state)
        # the device rules' transition, ready before the init asks for them
        c.cg.plan(c.linux.get("resources") or {}, c.linux.get("devices"))
        return False

    def apply_resources(self) -> None:
        """As runc: the limits go in once the rootfs is ready (procHooks),
        before any hook runs and before the process's own settings."""
        if not self.c.applied:
            self.c.applied = True
            assert self.c.cg is not None  # the host preparation made it
            self.c.cg.apply(self.c.linux.get("resources") or {}, self.c.linux.get("devices"))

    def on_hooks(self, payload: bytes, fds: list[int]) -> bool:
        """runc's procHooks: the resources, then prestart and createRuntime."""
        c = self.c
        self.apply_resources()  # before the hooks, which may rely on them (runc)
        hooks = c.spec.get("hooks") or {}
        if hooks.get("prestart") or hooks.get("createRuntime"):
            from .. import hooks as H
            st = oci_state({**c.state, "pid": c.init_pid}, "creating")
            H.run_hooks("prestart", hooks.get("prestart") or [], st, cwd=c.bundle)
            H.run_hooks("createRuntime", hooks.get("createRuntime") or [], st, cwd=c.bundle)
        self.reply(Msg.HOOKS_DONE)
        return False

    def on_mount_source(self, payload: bytes, fds: list[int]) -> bool:
        """A mount source only the host side can open (rootfs/idmap.py)."""
        from ..rootfs.idmap import mount_source
        c = self.c
        index, _, kind = payload.decode().partition(" ")
        m = c.spec["mounts"][int(index)]
        try:
            src = mount_source(m, c.bundle, c.init_pid, kind)
        except PyruncError as e:
            raise PyruncError(_creation_error(c.o.mode, f"error mounting {m.get('source', '')!r} to rootfs "
                                                        f"at {m.get('destination')!r}: {e}")) from None
        try:
            assert c.ch is not None  # the stage child's start made it
            c.ch.send(Msg.MOUNT_SOURCE_FD, fds=[src] if src >= 0 else None)
        finally:
            if src >= 0:
                os.close(src)
        return False

    def on_console(self, payload: bytes, fds: list[int]) -> bool:
        self.c.master = fds[0] if fds else None
        return False

    def on_ready(self, payload: bytes, fds: list[int]) -> bool:
        self.apply_resources()
        # as runc: rlimits are set from here (prlimit), so a refused one is
        # a create-time error, not a silent exit after start
        _set_rlimits(self.c.init_pid, self.c.process.get("rlimits") or [])
        return True

    def on_error(self, payload: bytes, fds: list[int]) -> bool:
        raise _init_error(self.c.o.mode, payload)

    def on_eof(self, payload: bytes, fds: list[int]) -> bool:
        raise _init_died(self.c.o.mode, self.c.cg)


# -- phase 4: the finish, and the undo -------------------------------------------------

def _finish(c: _Create) -> None:
    """What follows the init's READY: the pid file, the terminal to the
    console socket, the pidfd; for `create`, CREATED and the init's EOF."""
    o = c.o
    if o.pid_file:
        _write_pid_file(o.pid_file, c.init_pid)
    if c.master is not None and c.console is not None:
        from .. import terminal
        terminal.send_to_console_socket(c.console, c.master)
        os.close(c.master)
        c.master = None
    if o.pidfd_socket:
        send_pidfd(o.pidfd_socket, c.init_pid, "standard")
    if o.mode == "create":
        assert c.ch is not None  # the stage child's start made it
        _reply(c, Msg.CREATED)
        # the init takes the container's ids and capabilities, then
        # closes the channel (EOF) and waits on the fifo; its error, if not
        t, payload, _ = c.ch.recv()
        if t == Msg.ERROR:
            raise _init_error(o.mode, payload)
        if t != Msg.EOF or proc_start_time(c.init_pid) != c.state["init_start"]:
            raise _init_died(o.mode, c.cg)
        c.ch.close()
        c.ch = None


def _close_console(c: _Create) -> None:
    if c.console is not None:
        c.console.close()
        c.console = None


def _undo_create(c: _Create) -> None:
    """Leave nothing behind: processes, channel, terminal, cgroup, state dir,
    the rootfs bind."""
    _close_console(c)
    if c.fifo_fd >= 0:
        os.close(c.fifo_fd)
    if not c.init_pid and c.ch is not None:
        c.init_pid = _reported_init_pid(c.ch, c.pid_s)  # an init not yet joined is ended too
    assert c.sd is not None  # create() made it before any undo
    _undo(c.sd, c.cg, c.init_pid, c.pid_s, c.ch, c.master)
    if c.host_bind:
        from ..rootfs import hostns
        hostns.release(c.state["rootfs"], c.host_bind)


def _reported_init_pid(ch: Channel, pid_s: int) -> int:
    """The init's pid, if the stage child sent it and we have not read it
    yet (a failure between the stage's start and the handshake): without
    it the undo could neither kill it nor reap it."""
    sock = ch.sock
    sock.setblocking(False)
    try:
        while True:
            try:
                tag, payload, fds = ch.recv()
            except (BlockingIOError, PyruncError):
                return 0
            for fd in fds:
                os.close(fd)
            if tag == Msg.INIT_PID:
                return int(payload) or pid_s  # 0: the stage child is the init
            if tag == Msg.EOF:
                return 0
    finally:
        sock.setblocking(True)


def _record_plan(sd: StateDir, state: dict, cg, o: CreateOptions) -> None:
    """Record what create is about to make (the cgroup in every hierarchy, a
    systemd unit, the rootfs bind of a container without a mount namespace)
    before making it (the bind: before attaching it). A create killed from
    here on, before its state exists (SIGKILL: no undo runs), is removed by
    `delete` from this: the processes of its cgroup, the cgroup, the bind,
    the state dir."""
    plan = {k: state[k] for k in ("id", "bundle", "rootfs", "created", "pid") if k in state}
    plan["cgroup_paths"] = cg.paths
    if o.systemd_cgroup:
        plan["systemd"] = cg.state()
    if state.get("host_mount"):
        plan["host_mount"] = state["host_mount"]
    sd.record_plan(plan)


def _complete_state(state: dict, init_pid: int, cg, nss: dict, spec: dict, o: StateOptions) -> None:
    state["pid"] = init_pid
    state["init_start"] = proc_start_time(init_pid)
    state["cgroup_paths"] = cg.paths
    state["freezer"] = cg.paths.get("freezer") or cg.paths.get("")
    state["namespaces"] = {t: p or f"/proc/{init_pid}/ns/{_NSFILE[t]}" for t, p in nss.items()}
    state["config"] = spec
    state["rootless"] = cg.rootless
    if o.systemd_cgroup:
        state["systemd"] = cg.state()
    state["no_new_keyring"] = bool(o.no_new_keyring)


_NSFILE = {"user": "user", "pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts",
           "mount": "mnt", "cgroup": "cgroup", "time": "time"}


def _died(cg) -> str:
    """Why the init vanished without a word: usually the OOM killer (a memory
    limit below what setting up needs), which the cgroup counts."""
    for key, name in (("memory", "memory.oom_control"), ("", "memory.events")):
        path = cg.paths.get(key) if cg is not None else None
        if not path:
            continue
        try:
            with open(os.path.join(path, name)) as f:
                kills = next((int(line.split()[1]) for line in f if line.startswith("oom_kill ")), 0)
        except (OSError, ValueError, IndexError):
            continue
        if kills:
            return "container init was killed by the OOM killer: the cgroup memory limit is too low"
    return "container init exited unexpectedly"


def _init_error(mode: str, payload: bytes) -> InitError:
    """An error the stage child or the init reported: runc's words for an
    error inside the container's set-up ("unable to start container process:
    error during container init: error mounting ...")."""
    reason = msg = payload.decode(errors="replace")
    if not msg.startswith(("exec:", "chdir", "unable to ")):
        msg = "unable to start container process: error during container init: " + msg
    return InitError(_creation_error(mode, msg), reason, mode)


def _init_died(mode: str, cg) -> InitError:
    """The init went away without a word."""
    why = _died(cg)
    return InitError(_creation_error(mode, why), why, mode)


def _creation_error(mode: str, msg: str) -> str:
    if msg.startswith(("exec:", "chdir", "unable to apply caps")):
        msg = "unable to start container process: " + msg
    return f"pyrunc {mode} failed: {msg}"


def _undo(sd: StateDir, cg, init_pid: int, pid_s: int, ch, master) -> None:
    """Leave nothing behind: processes, cgroup, state dir."""
    for pid in (init_pid, pid_s):
        if pid:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
    if ch is not None:
        ch.close()
    if master is not None:
        os.close(master)
    for pid in (pid_s,):
        if pid:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
    if init_pid and init_pid != pid_s:
        _wait_gone(init_pid)
    if cg is not None:
        try:
            cg.destroy()
        except OSError as e:
            log.warn(f"failed to remove cgroup: {e}")
    sd.remove()


def _wait_gone(pid: int, timeout: float = 5.0) -> None:
    """Wait (on a pidfd) until a process we cannot reap (not our child) is
    gone or a zombie."""
    try:
        os.waitpid(pid, 0)
        return
    except ChildProcessError:
        pass
    from .state import wait_pidfd
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        wait_pidfd(fd, timeout)
    finally:
        os.close(fd)


def send_pidfd(path: str, pid: int, kind: str) -> None:
    """--pidfd-socket: a pidfd of the process, with runc's payload ("standard"
    for an init, "setns" for an exec'd process)."""
    from .. import terminal
    from ..linux import sys as L
    fd = L.pidfd_open(pid)
    try:
        terminal.send_to_console_socket(path, fd, name=kind)
    except terminal.TerminalError as e:
        raise PyruncError(str(e).replace("console socket", "pidfd socket")) from None
    finally:
        os.close(fd)


def _set_rlimits(pid: int, rlimits: list[dict]) -> None:
    if not rlimits:
        return
    from ..linux.consts import RLIMITS
    from ..linux.sys import prlimit
    for r in rlimits:
        typ = RLIMITS[r["type"]]
        # values from 2^63 up (RLIM_INFINITY is 2^64-1 in the spec) mean unlimited
        soft, hard = (v if v < 2**63 else 2**64 - 1 for v in (r.get("soft", 0), r.get("hard", 0)))
        try:
            prlimit(pid, typ, soft, hard)
        except OSError as e:
            err = os.strerror(e.errno).lower() if e.errno else str(e)
            why = f"error setting rlimits for ready process: error setting rlimit type {typ}: {err}"
            raise InitError("unable to start container process: error during container init: " + why, why) from e


def _host_id(maps: list[dict] | None) -> int:
    """The host id that container id 0 maps to (0 without a user namespace)."""
    for m in maps or []:
        if m["containerID"] <= 0 < m["containerID"] + m["size"]:
            return m["hostID"] - m["containerID"]
    return 0


def _write_id_maps(pid: int, linux: dict) -> None:
    uid_maps, gid_maps = linux.get("uidMappings") or [], linux.get("gidMappings") or []
    if os.geteuid() != 0 and not (_own_id_only(uid_maps, os.geteuid()) and _own_id_only(gid_maps, os.getegid())):
        # more than our own id: only the setuid helpers of shadow's uidmap
        # package may map it, within /etc/subuid and /etc/subgid (as runc)
        _newidmap("newuidmap", pid, uid_maps)
        _newidmap("newgidmap", pid, gid_maps)
        return
    from ..linux.sys import id_map_text
    try:
        if os.geteuid() != 0:
            with open(f"/proc/{pid}/setgroups", "wb") as f:
                f.write(b"deny")
        with open(f"/proc/{pid}/uid_map", "wb") as f:
            f.write(id_map_text(uid_maps))
        with open(f"/proc/{pid}/gid_map", "wb") as f:
            f.write(id_map_text(gid_maps))
    except OSError as e:
        raise PyruncError(f"failed to write user namespace mappings: {e.strerror}") from None


def _write_time_offsets(pid: int, linux: dict) -> None:
    """The new time namespace's offsets, written before any process is in it
    (the stage child unshared it; its children will enter it)."""
    from ..init.child import time_offsets_text
    path = f"/proc/{pid}/timens_offsets"
    try:
        with open(path, "wb") as f:
            f.write(time_offsets_text(linux))
    except OSError as e:
        raise PyruncError(f"failed to update {path}: {e.strerror}") from None


def _own_id_only(maps: list[dict], own: int) -> bool:
    """The one mapping an unprivileged process may write itself."""
    return len(maps) <= 1 and all(m["hostID"] == own and m["size"] == 1 for m in maps)


def _newidmap(tool: str, pid: int, maps: list[dict]) -> None:
    import shutil
    import subprocess
    path = shutil.which(tool) or shutil.which(tool, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if path is None:
        raise PyruncError(f"failed to write user namespace mappings: {tool} not found "
                          "(install the uidmap package to map more than your own id)")
    argv = [path, str(pid)] + [str(v) for m in maps for v in (m["containerID"], m["hostID"], m["size"])]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode:
        msg = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        raise PyruncError(f"failed to write user namespace mappings: {tool}: {msg}")


def _write_pid_file(path: str, pid: int) -> None:
    """Write atomically (tmp + rename), as runc does: a reader never sees it empty."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path))
    try:
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.rename(tmp, path)
    except OSError as e:
        raise PyruncError(f"pid file {path}: {e.strerror}") from None
