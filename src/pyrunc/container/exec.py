"""`exec`: a new process inside a running container.

The parent forks a child that joins the container's namespaces (in runc's
order: init/child.py join_namespaces), is put into its cgroup, and forks again so that the pid
namespace applies; the grandchild applies the process settings and execs.
As in runc, the process defaults come from the container's config.json
process, with the command line's overrides.
"""
from __future__ import annotations

import os

from .. import log as _log  # not `log`: functions here import it locally too
from ..errors import ConfigError, InitError, InvalidState, PyruncError
from ..init.sync import Msg
from ..linux import consts as C



def three_fds(stdio) -> tuple[int, int, int] | None:
    """A caller's stdio=: exactly three fds (stdin, stdout, stderr), or None."""
    if stdio is None:
        return None
    fds = tuple(stdio)
    if len(fds) != 3 or not all(isinstance(fd, int) and not isinstance(fd, bool) and fd >= 0 for fd in fds):
        raise PyruncError("stdio: expected three file descriptors (stdin, stdout, stderr)")
    return fds[0], fds[1], fds[2]

class ExecOptions:
    """What `exec` runs and how: `pyrunc exec`'s flags, typed (the command
    line builds one from its flags; Container.exec from keyword arguments).

    args: the command (unless `process`); env: "K=V" entries added to the
    container's; cwd; user: "uid[:gid]" (or an int uid); additional_gids;
    tty: a terminal (with detach, console_socket receives its master);
    detach: return once started (0) instead of its exit status;
    pid_file, pidfd_socket; process: a process.json, as a path or a dict, in
    place of args and the overrides; capabilities: names added to every set;
    no_new_privs; apparmor: a profile; label: the SELinux process label;
    cgroup: a sub-cgroup ("sub" or "ctrl:sub" strings, or {ctrl: sub});
    ignore_paused: exec into a paused container; preserve_fds: N more fds
    from 3 on; stdio: three fds that become the process's 0, 1 and 2 in
    place of ours (a shim hands its FIFOs over so)."""

    __slots__ = ("args", "env", "cwd", "user", "additional_gids", "tty", "detach", "console_socket",
                 "pidfd_socket", "pid_file", "process", "capabilities", "no_new_privs", "apparmor",
                 "label", "cgroup", "ignore_paused", "preserve_fds", "stdio")

    def __init__(self, args: list[str] | tuple = (), *, env: list[str] | None = None, cwd: str = "",
                 user: str | int = "", additional_gids: list[int] | None = None, tty: bool = False,
                 detach: bool = False, console_socket: str = "", pidfd_socket: str = "", pid_file: str = "",
                 process: str | dict | None = None, capabilities: list[str] | None = None,
                 no_new_privs: bool = False, apparmor: str = "", label: str = "",
                 cgroup: list[str] | dict[str, str] | None = None, ignore_paused: bool = False,
                 preserve_fds: int = 0, stdio: tuple[int, int, int] | None = None) -> None:
        self.args = list(args)
        self.env = list(env or [])
        self.cwd = cwd
        self.user = str(user) if user != "" else ""
        self.additional_gids = list(additional_gids or [])
        self.tty = tty
        self.detach = detach
        self.console_socket = console_socket
        self.pidfd_socket = pidfd_socket
        self.pid_file = pid_file
        self.process = process or None
        self.capabilities = list(capabilities or [])
        self.no_new_privs = no_new_privs
        self.apparmor = apparmor
        self.label = label
        self.cgroup = cgroup
        self.ignore_paused = ignore_paused
        self.preserve_fds = preserve_fds
        self.stdio = three_fds(stdio)

    @classmethod
    def from_flags(cls, opts: dict, args: list[str]) -> "ExecOptions":
        """From `pyrunc exec`'s parsed flags."""
        return cls(args, env=opts["env"], cwd=opts["cwd"], user=opts["user"],
                   additional_gids=opts["additional-gids"], tty=opts["tty"], detach=opts["detach"],
                   console_socket=opts["console-socket"], pidfd_socket=opts["pidfd-socket"],
                   pid_file=opts["pid-file"], process=opts["process"], capabilities=opts["cap"],
                   no_new_privs=opts["no-new-privs"], apparmor=opts["apparmor"], label=opts["process-label"],
                   cgroup=opts["cgroup"], ignore_paused=opts["ignore-paused"], preserve_fds=opts["preserve-fds"])


def _process_json(src: str | dict) -> dict:
    """-p: a process.json file, or the library's dict (copied)."""
    if isinstance(src, dict):
        from ..fastjson import dumps, loads
        try:
            return loads(dumps(src))
        except (TypeError, ValueError) as e:
            raise ConfigError(f"process: not representable as JSON: {e}", "process") from e
    from ..fastjson import loads
    try:
        with open(src, "rb") as f:
            p = loads(f.read())
    except OSError as e:
        raise ConfigError(f"{src}: {e.strerror}") from e
    except ValueError as e:
        raise ConfigError(f"{src}: invalid JSON: {e}") from e
    if not isinstance(p, dict):
        raise ConfigError(f"{src}: process must be a JSON object", "process")
    return p


def _with_overrides(base: dict, o: ExecOptions) -> dict:
    """The container's process with args and the options' overrides."""
    if not o.args:
        raise ConfigError("exec: process args cannot be empty", "process.args")
    p = {k: v for k, v in base.items()}
    p["args"] = list(o.args)
    if base.get("env") is not None or o.env:  # none at all: no HOME either (runc)
        p["env"] = list(base.get("env") or []) + list(o.env)
    p["terminal"] = bool(o.tty)
    if o.cwd:
        p["cwd"] = o.cwd
    if o.user:
        u, _, g = o.user.partition(":")
        try:
            p["user"] = {"uid": int(u), "gid": int(g) if g else 0}
        except ValueError as e:
            raise ConfigError(f"parsing {o.user!r} as user[:group]: only numeric ids are supported",
                              "process.user") from e
    if o.additional_gids:
        user = dict(p.get("user") or {})
        try:
            user["additionalGids"] = [int(x) for x in o.additional_gids]
        except ValueError as e:
            raise ConfigError("--additional-gids takes numeric group ids", "process.user.additionalGids") from e
        p["user"] = user
    if o.capabilities:
        caps = {k: list(v) for k, v in (base.get("capabilities") or {}).items()}
        for c in o.capabilities:
            for k in ("bounding", "effective", "permitted", "ambient"):
                if c not in caps.setdefault(k, []):
                    caps[k].append(c)
        p["capabilities"] = caps
    if o.no_new_privs:
        p["noNewPrivileges"] = True
    if o.apparmor:
        p["apparmorProfile"] = o.apparmor
    if o.label:
        p["selinuxLabel"] = o.label
    return p


def build_process(base: dict, o: ExecOptions) -> dict:
    """The process to run: -p FILE, or the container's process with args and
    the options' overrides (runc's getProcess)."""
    if o.process:
        p = _process_json(o.process)
        for k in ("scheduler", "ioPriority", "execCPUAffinity"):  # runc: the container's unless its own
            if p.get(k) is None and base.get(k) is not None:
                p[k] = base[k]
    else:
        p = _with_overrides(base, o)
    from ..spec.config import validate_process
    from ..spec.schema import PROCESS, check
    check(p, PROCESS, "process")  # process.json, or the flags' ids: typed as at create
    p.setdefault("cwd", "/")
    validate_process(p)
    from ..security import attrs
    attrs.validate(p, None, warn=False)
    return p


def _sub_cgroups(cgroup: list[str] | dict[str, str] | None) -> dict[str, str] | None:
    if not cgroup:
        return None
    if isinstance(cgroup, dict):
        return dict(cgroup)
    from ..cgroups.join import parse_sub_cgroups
    return parse_sub_cgroups(list(cgroup))


def execute(root: str, cid: str, o: ExecOptions) -> int:
    """Run the process; its exit status (128+N for signal N), 0 if detached."""
    from .ops import load
    sd, st, status = load(root, cid, shared=True)
    sd.unlock()
    if status == "stopped":
        raise InvalidState("cannot exec in a stopped container", status)
    if status == "paused" and not o.ignore_paused:
        raise InvalidState("cannot exec in a paused container (use --ignore-paused to override)", status)
    subs = _sub_cgroups(o.cgroup)
    config = st.get("config") or {}
    p = build_process(config.get("process") or {}, o)
    terminal = bool(p.get("terminal"))
    if terminal and o.detach and not o.console_socket:
        raise PyruncError("cannot allocate tty if pyrunc will detach without setting console socket")
    if o.console_socket and not terminal:
        raise PyruncError("cannot use console socket if pyrunc will not detach or allocate tty")
    sc = _exec_seccomp(config, cid, st)
    from ..init.child import preload
    preload(terminal, hooks=False, mempolicy=(config.get("linux") or {}).get("memoryPolicy") is not None)
    from . import foreground as F
    fwd = None
    prev_subreaper = 1
    if not o.detach:
        prev_subreaper = F.become_subreaper()
        fwd = F.Forwarder()
    try:
        keyring = "" if st.get("no_new_keyring") else cid
        pid, master, ch = _spawn(st, p, terminal, o.preserve_fds or 0, keyring, sc, subs, o.stdio)
        master = _hand_over(o, pid, master, ch)
        ch.send(Msg.GO)
        _await_exec(ch, pid)
        if _log.debug_enabled():
            _log.debug(f"exec: process {pid} started in container {cid}")
        if o.detach:
            return 0
        assert fwd is not None  # made above when not detached
        return F.wait_foreground(pid, fwd, master)
    finally:
        if fwd is not None:
            fwd.close()
            F.restore_subreaper(prev_subreaper)


def _exec_seccomp(config: dict, cid: str, st: dict):
    """The container's profile applies to exec'd processes too (runc); built
    here, before any process enters the container."""
    if not (config.get("linux") or {}).get("seccomp"):
        return None
    from ..security.seccomp import prepare
    from .state import OCI_VERSION
    sc = prepare(config, cid=cid, bundle=st.get("bundle") or "", status="running", init_pid=st.get("pid") or 0,
                 oci_version=OCI_VERSION)
    if sc is not None:
        sc.start_build()
        sc.open_listener(connect=True)
    return sc


def _hand_over(o: ExecOptions, pid: int, master: int | None, ch) -> int | None:
    """The pid file, the pidfd, the terminal to the console socket, before
    the process may run; the master end left for the foreground proxy."""
    try:
        if o.pid_file:
            from .launch import _write_pid_file
            _write_pid_file(o.pid_file, pid)
        if o.pidfd_socket:
            from .launch import send_pidfd
            send_pidfd(o.pidfd_socket, pid, "setns")
        if master is not None and o.console_socket:
            from .. import terminal as T
            T.send_to_console_socket(o.console_socket, master)
            os.close(master)
            master = None
    except BaseException:
        _kill(pid)  # it must not run, nor report that we went away
        ch.close()
        raise
    if master is not None:
        from ..terminal import clear_onlcr
        clear_onlcr(master)
    return master


def _spawn(st: dict, process: dict, terminal: bool, preserve_fds: int, keyring: str, sc=None,
           subs: dict[str, str] | None = None, stdio: tuple[int, int, int] | None = None):
    import _socket
    from ..cgroups.join import join_exec
    from ..init.sync import Channel
    ps, cs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    nss = {t: p for t, p in (st.get("namespaces") or {}).items()}
    cg_paths = st.get("cgroup_paths") or {}
    from ..security import attrs
    initial, final_cpus = attrs.exec_affinity(process)
    pid1 = attrs.fork_with_affinity(initial)  # execCPUAffinity.initial, inherited
    if pid1 == 0:
        ps.close()
        from ..init.stage import forget_wakeup_fd, use_stdio
        forget_wakeup_fd()
        if stdio is not None:
            use_stdio(stdio)
        # no mount namespace to join (the container shares the host's): the
        # init's root instead, where runc would leave us in the host's
        root = "" if "mount" in nss else f"/proc/{st['pid']}/root"
        _exec_child(Channel(cs), nss, process, terminal, preserve_fds, keyring, sc,
                    (st.get("config") or {}).get("linux"), root)
        os._exit(1)
    cs.close()
    if sc is not None:
        sc.release()  # the child has its own copy of the agent connection
    ch = Channel(ps)
    pid = 0
    master = None
    try:
        while True:
            tag, payload, fds = ch.recv()
            if tag == Msg.INIT_PID:
                pid = int(payload)
                os.waitpid(pid1, 0)
                pid1 = 0
                try:
                    join_exec(cg_paths, pid, subs, st.get("pid") or 0)
                except PyruncError as e:
                    raise PyruncError(f"unable to start container process: {e}") from None
                attrs.set_final_affinity(pid, initial, final_cpus)
                ch.send(Msg.CGROUP_JOINED, str(pid))
            elif tag == Msg.CONSOLE:
                master = fds[0] if fds else None
            elif tag == Msg.READY:
                return pid, master, ch
            elif tag == Msg.ERROR:
                raise _exec_error(payload.decode(errors="replace"))
            else:
                raise InitError("exec failed: the process exited before it was ready",
                                "the process exited before it was ready", "exec")
    except BaseException:
        for p in (pid, pid1):
            _kill(p)
        ch.close()
        raise


def _kill(pid: int) -> None:
    if pid:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def _await_exec(ch, pid: int) -> None:
    """EOF once the process has exec'd; an error message if it failed first."""
    tag, payload, _ = ch.recv()
    ch.close()
    if tag == Msg.ERROR:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        raise _exec_error(payload.decode(errors="replace"))


def _exec_error(msg: str) -> InitError:
    """What the process reported before its execve, as runc words it."""
    if msg.startswith("exec:") or msg.startswith("chdir"):
        return InitError("exec failed: unable to start container process: " + msg, msg, "exec")
    return InitError("exec failed: " + msg, msg, "exec")


def _exec_child(ch, nss: dict[str, str], process: dict, terminal: bool, preserve_fds: int,
                keyring: str, sc=None, linux: dict | None = None, root: str = "") -> None:
    from ..init.child import _open_ns, conceal_command_line, fail, join_namespaces, join_session_keyring, seal_imports
    if _log.debug_enabled():  # runc's words (nsexec, setns_init), which its exec tests look for
        _log.debug("=> nsexec container setup")
        cpus = os.sched_getaffinity(0)  # execCPUAffinity.initial, set before the fork
        _log.debug("nsexec: affinity: 0x%x" % sum(1 << c for c in cpus if c < 64))
    try:
        from ..linux import sys as L
        L.prctl(C.PR_SET_DUMPABLE, 0)
        conceal_command_line()
        fds = {t: _open_ns(t, path) for t, path in nss.items() if path}
        join_namespaces(fds)  # as root of the container's user namespace if it has one
        if root:
            os.chroot(root)
            os.chdir("/")
        if _log.debug_enabled():
            _log.debug("<= nsexec container setup")
        seal_imports()  # our root is now the container's: never import from it
        pid = os.fork()
        if pid:
            ch.send(Msg.INIT_PID, str(pid))
            os._exit(0)
        host_pid = ch.expect(Msg.CGROUP_JOINED)
        if _log.debug_enabled():
            _log.debug("child process in init()")
        if keyring:
            join_session_keyring(keyring)
        if terminal:
            from .. import terminal as T
            master, slave, _ = T.open_pty()
            size = process.get("consoleSize")
            if size:
                T.set_window_size(slave, size.get("height", 0), size.get("width", 0))
            ch.send(Msg.CONSOLE, fds=[master])
            os.close(master)
            from .. import log
            log.keep_stderr()
            T.setup_slave_as_stdio(slave)
            if slave > 2:
                os.close(slave)
        from ..security.process import prepare_exec
        final = prepare_exec(process)
        from ..init.child import apply_attrs
        apply_attrs(process, linux)
        if sc is not None:
            sc.pid = int(host_pid or 0)  # for the notify agent
            final.seccomp = sc
        ch.send(Msg.READY)
        ch.expect(Msg.GO)
        if _log.debug_enabled():
            _log.debug("setns_init: about to exec")
        final.execute(preserve_fds)  # the channel closes on exec: EOF tells the parent
    except BaseException as e:  # noqa: BLE001
        fail(ch, e)
