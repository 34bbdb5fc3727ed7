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
from ..linux import consts as C


def build_process(base: dict, o: dict, args: list[str]) -> dict:
    """The process to run: -p FILE, or the container's process with args and
    the flags' overrides (runc's getProcess)."""
    if o.get("process"):
        from ..fastjson import loads
        try:
            with open(o["process"], "rb") as f:
                p = loads(f.read())
        except OSError as e:
            raise ConfigError(f"{o['process']}: {e.strerror}") from e
        except ValueError as e:
            raise ConfigError(f"{o['process']}: invalid JSON: {e}") from e
        if not isinstance(p, dict):
            raise ConfigError(f"{o['process']}: process must be a JSON object", "process")
    else:
        if not args:
            raise ConfigError("exec: process args cannot be empty", "process.args")
        p = {k: v for k, v in base.items()}
        p["args"] = list(args)
        if base.get("env") is not None or o.get("env"):  # none at all: no HOME either (runc)
            p["env"] = list(base.get("env") or []) + list(o.get("env") or [])
        p["terminal"] = bool(o.get("tty"))
        if o.get("cwd"):
            p["cwd"] = o["cwd"]
        if o.get("user"):
            u, _, g = o["user"].partition(":")
            try:
                p["user"] = {"uid": int(u), "gid": int(g) if g else 0}
            except ValueError as e:
                raise ConfigError(f"parsing {o['user']!r} as user[:group]: only numeric ids are supported",
                                  "process.user") from e
        if o.get("additional-gids"):
            user = dict(p.get("user") or {})
            try:
                user["additionalGids"] = [int(x) for x in o["additional-gids"]]
            except ValueError as e:
                raise ConfigError("--additional-gids takes numeric group ids", "process.user.additionalGids") from e
            p["user"] = user
        if o.get("cap"):
            caps = {k: list(v) for k, v in (base.get("capabilities") or {}).items()}
            for c in o["cap"]:
                for k in ("bounding", "effective", "permitted", "ambient"):
                    if c not in caps.setdefault(k, []):
                        caps[k].append(c)
            p["capabilities"] = caps
        if o.get("no-new-privs"):
            p["noNewPrivileges"] = True
        if o.get("apparmor"):
            p["apparmorProfile"] = o["apparmor"]
        if o.get("process-label"):
            p["selinuxLabel"] = o["process-label"]
    if o.get("process"):  # runc: the container's values unless process.json has its own
        for k in ("scheduler", "ioPriority", "execCPUAffinity"):
            if p.get(k) is None and base.get(k) is not None:
                p[k] = base[k]
    from ..spec.config import validate_process
    from ..spec.schema import PROCESS, check
    check(p, PROCESS, "process")  # process.json, or the flags' ids: typed as at create
    p.setdefault("cwd", "/")
    validate_process(p)
    from ..security import attrs
    attrs.validate(p, None, warn=False)
    return p


def execute(root: str, cid: str, o: dict, args: list[str]) -> int:
    from .ops import load
    sd, st, status = load(root, cid, shared=True)
    sd.unlock()
    if status == "stopped":
        raise InvalidState("cannot exec in a stopped container", status)
    if status == "paused" and not o.get("ignore-paused"):
        raise InvalidState("cannot exec in a paused container (use --ignore-paused to override)", status)
    subs = None
    if o.get("cgroup"):
        from ..cgroups.join import parse_sub_cgroups
        subs = parse_sub_cgroups(o["cgroup"])
    config = st.get("config") or {}
    p = build_process(config.get("process") or {}, o, args)
    terminal = bool(p.get("terminal"))
    detach = bool(o.get("detach"))
    if terminal and detach and not o.get("console-socket"):
        raise PyruncError("cannot allocate tty if pyrunc will detach without setting console socket")
    if o.get("console-socket") and not terminal:
        raise PyruncError("cannot use console socket if pyrunc will not detach or allocate tty")
    sc = None
    if (config.get("linux") or {}).get("seccomp"):
        # the container's profile applies to exec'd processes too (runc); built
        # here, before any process enters the container
        from ..security.seccomp import prepare
        from .state import OCI_VERSION
        sc = prepare(config, cid=cid, bundle=st.get("bundle") or "", status="running",
                     init_pid=st.get("pid") or 0, oci_version=OCI_VERSION)
        if sc is not None:
            sc.start_build()
            sc.open_listener(connect=True)
    from ..init.child import preload
    preload(terminal, hooks=False, mempolicy=(config.get("linux") or {}).get("memoryPolicy") is not None)
    from . import foreground as F
    fwd = None
    prev_subreaper = 1
    if not detach:
        prev_subreaper = F.become_subreaper()
        fwd = F.Forwarder()
    try:
        keyring = "" if st.get("no_new_keyring") else cid
        pid, master, ch = _spawn(st, p, terminal, o.get("preserve-fds") or 0, keyring, sc, subs)
        try:
            if o.get("pid-file"):
                from .launch import _write_pid_file
                _write_pid_file(o["pid-file"], pid)
            if o.get("pidfd-socket"):
                from .launch import send_pidfd
                send_pidfd(o["pidfd-socket"], pid, "setns")
            if master is not None and o.get("console-socket"):
                from .. import terminal as T
                T.send_to_console_socket(o["console-socket"], master)
                os.close(master)
                master = None
        except BaseException:
            _kill(pid)  # it must not run, nor report that we went away
            ch.close()
            raise
        if master is not None:
            from ..terminal import clear_onlcr
            clear_onlcr(master)
        ch.send("g")
        _await_exec(ch, pid)
        if _log.debug_enabled():
            _log.debug(f"exec: process {pid} started in container {cid}")
        if detach:
            return 0
        return F.wait_foreground(pid, fwd, master)
    finally:
        if fwd is not None:
            fwd.close()
            F.restore_subreaper(prev_subreaper)


def _spawn(st: dict, process: dict, terminal: bool, preserve_fds: int, keyring: str, sc=None,
           subs: dict[str, str] | None = None):
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
            if tag == "P":
                pid = int(payload)
                os.waitpid(pid1, 0)
                pid1 = 0
                try:
                    join_exec(cg_paths, pid, subs, st.get("pid") or 0)
                except PyruncError as e:
                    raise PyruncError(f"unable to start container process: {e}") from None
                attrs.set_final_affinity(pid, initial, final_cpus)
                ch.send("j", str(pid))
            elif tag == "T":
                master = fds[0] if fds else None
            elif tag == "R":
                return pid, master, ch
            elif tag == "E":
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
    if tag == "E":
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
            ch.send("P", str(pid))
            os._exit(0)
        host_pid = ch.expect("j")
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
            ch.send("T", fds=[master])
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
        ch.send("R")
        ch.expect("g")
        if _log.debug_enabled():
            _log.debug("setns_init: about to exec")
        final.execute(preserve_fds)  # the channel closes on exec: EOF tells the parent
    except BaseException as e:  # noqa: BLE001
        fail(ch, e)
