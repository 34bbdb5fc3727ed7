"""The runtime parent's half of `create` and `run`.

It validates, takes the state dir, makes the cgroup and the exec fifo, forks
the stage child and then serves its requests on the sync channel (user
namespace maps, cgroup join, runtime hooks, the terminal master) until the
init reports ready. Any failure on either side undoes everything: the init is
killed and reaped, the cgroup and the state dir removed.
"""
from __future__ import annotations

import os
import time

from .. import log
from ..errors import InitError, PyruncError
from ..fastjson import dumps
from ..spec import config as spec_config
from .state import OCI_VERSION, StateDir, oci_state, proc_start_time, rfc3339nano


class CreateOptions:
    __slots__ = ("bundle", "pid_file", "console_socket", "no_pivot", "no_new_keyring",
                 "preserve_fds", "mode", "detach", "pidfd_socket", "after_join", "stage", "rootless",
                 "systemd_cgroup", "config")

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
        self.after_join = None
        # the stage child, if the command line forked it early (init/stage.py)
        self.stage = None
        # the library's config dict, in place of <bundle>/config.json
        self.config: dict | None = None


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


def create(root: str, cid: str, o: CreateOptions) -> Launched:
    bundle = os.path.abspath(o.bundle or ".")
    spec = spec_config.load_config(bundle) if o.config is None else o.config
    spec_config.validate(spec, bundle)
    linux = spec.get("linux") or {}
    nss = spec_config.namespaces(spec)
    if "time" in nss or "timeOffsets" in linux or nss.get("user"):
        from ..spec import nsrules
        nsrules.validate(linux, nss)
    process = spec["process"]
    from ..security import attrs
    attrs.validate(process, spec.get("linux"))
    netdevs = (spec.get("linux") or {}).get("netDevices")
    if netdevs:
        from . import netdev
        netdev.validate(spec["linux"], spec_config.namespaces(spec))
    seccomp = None
    if (spec.get("linux") or {}).get("seccomp"):  # checked before anything exists
        from ..security.seccomp import prepare
        seccomp = prepare(spec, cid=cid, bundle=bundle, oci_version=OCI_VERSION)
    terminal = bool(process.get("terminal"))
    if terminal and o.detach and not o.console_socket:
        raise PyruncError("cannot allocate tty if pyrunc will detach without setting console socket")
    if o.console_socket and not terminal:
        raise PyruncError("cannot use console socket if pyrunc will not detach or allocate tty")
    console = None
    if o.console_socket:  # connect first: a bad socket fails before anything exists
        from ..terminal import connect_console_socket
        console = connect_console_socket(o.console_socket)
    if o.preserve_fds < 0:
        raise PyruncError("--preserve-fds must not be negative")

    sd = StateDir(root, cid)
    sd.create()
    cg = None
    pid_s = init_pid = 0
    ch = None
    master = None
    host_bind = 0  # the rootfs bound onto itself: no mount namespace (rootfs/hostns.py)
    try:
        from ..cgroups import is_rootless, new_manager
        rootless = is_rootless(o.rootless)
        mgr = new_manager(linux.get("cgroupsPath") or "", cid, rootless, o.systemd_cgroup, spec.get("annotations"))
        mgr.check(linux.get("resources") or {}, linux.get("devices"))  # before anything runs
        try:
            mgr.check_unused()
        except PyruncError as e:
            raise PyruncError(_creation_error(o.mode, str(e))) from None
        cg = mgr  # from here on a failure removes it: not one that was in use
        created = rfc3339nano(time.time_ns())
        state = {
            "ociVersion": spec.get("ociVersion") or OCI_VERSION, "id": cid, "pid": 0,
            "bundle": bundle, "rootfs": spec_config.rootfs_path(spec, bundle), "created": created,
            "owner": "", "annotations": spec.get("annotations") or {},
        }
        if "mount" not in nss:  # the host's: the mounts land there
            from ..rootfs import hostns
            host_bind = state["host_mount"] = hostns.bind_rootfs(
                state["rootfs"], linux.get("rootfsPropagation"),
                record=lambda mnt_id: _record_plan(sd, {**state, "host_mount": mnt_id}, cg, o))
        if rootless:  # the hierarchies we may use decide what the init mounts
            _record_plan(sd, state, cg, o)
            cg.create()
        # the init mounts the cgroup tree from this, without reading /proc again
        cgroup_mounts = cg.mount_sources()
        fifo_fd = -1
        if o.mode == "create":
            os.mkfifo(sd.fifo, 0o622)
            # as runc: exact bits whatever the umask, owned by the container's
            # root, which opens it for writing from inside its user namespace
            os.chmod(sd.fifo, 0o622)
            os.chown(sd.fifo, _host_id(linux.get("uidMappings")), _host_id(linux.get("gidMappings")))
            fifo_fd = os.open(sd.fifo, os.O_PATH | os.O_CLOEXEC)
        from ..init.child import InitArgs
        args = InitArgs(spec=spec, rootfs=state["rootfs"], bundle=bundle, mode=o.mode, fifo_fd=fifo_fd,
                        no_pivot=o.no_pivot, no_new_keyring=o.no_new_keyring,
                        preserve_fds=o.preserve_fds, terminal=terminal, cid=cid, cgroup_mounts=cgroup_mounts,
                        seccomp=seccomp,
                        state_json=dumps(oci_state({**state, "pid": 0}, "creating")))
        stage = o.stage
        if stage is None:  # the library: fork now (the lock and console stay ours)
            from ..init.stage import Stage
            stage = Stage.fork(close=tuple(fd for fd in (sd.fd, console and console.fileno())
                                           if fd is not None and fd >= 0), preserve_fds=o.preserve_fds)
        pid_s, ch = stage.pid, stage.ch

        def child_died() -> None:
            """The child is gone: its last word (an error) is what counts."""
            while True:
                t, payload, _ = ch.recv()
                if t == "E":
                    raise _init_error(o.mode, payload) from None
                if not t:
                    raise _init_died(o.mode, cg) from None

        def reply(tag: str) -> None:
            try:
                ch.send(tag)
            except OSError:
                child_died()
        try:
            stage.start(args)
        except OSError:
            child_died()
        if fifo_fd >= 0:
            os.close(fifo_fd)
        applied = False

        def apply_resources() -> None:
            """As runc: the limits go in once the rootfs is ready (procHooks),
            before any hook runs and before the process's own settings."""
            nonlocal applied
            if not applied:
                applied = True
                cg.apply(linux.get("resources") or {}, linux.get("devices"))
        # while the stage child unshares and forks the init. The first
        # cgroup.procs write (ours, or the pre-arm thread's from the command
        # line) waits for an RCU grace period holding cgroup_mutex, and
        # mkdir waits for it too: this is where that wait is hidden. Nothing
        # else comes first: the init's first wait is for its join ("j"),
        # which needs these directories
        if not rootless:
            _record_plan(sd, state, cg, o)
            cg.create()
        while True:
            tag, payload, fds = ch.recv()
            if tag == "U":
                _write_id_maps(pid_s, linux)
                reply("u")
            elif tag == "O":
                try:
                    _write_time_offsets(pid_s, linux)
                except PyruncError as e:
                    raise PyruncError(_creation_error(o.mode, str(e))) from None
                reply("o")
            elif tag == "P":
                # join at once; the init waits for "j" only where it needs
                # the cgroup (its cgroup mounts, a cgroup namespace)
                if init_pid:  # one init per create: never join another pid
                    raise PyruncError(_creation_error(o.mode, "unexpected second init pid from the stage child"))
                init_pid = int(payload)
                try:
                    join, files = cg.join_fds(init_pid)
                except PyruncError as e:
                    raise PyruncError(_creation_error(o.mode, str(e))) from None
                try:  # with the files' names and its pid, for the init's error text
                    ch.send("j", "\n".join([str(init_pid)] + files), fds=join)
                except OSError:
                    child_died()
                finally:
                    for fd in join:
                        os.close(fd)
                if o.after_join is not None:  # the parent's own work, while the init mounts
                    o.after_join()
                attrs.reset_affinity(init_pid)  # runc's tryResetCPUAffinity
                if init_pid != pid_s:
                    os.waitpid(pid_s, 0)
                    pid_s = 0
                if netdevs:  # runc: setupNetworkDevices, from the parent
                    try:
                        state["netDevices"] = netdev.move_in(netdevs, f"/proc/{init_pid}/ns/net")
                    except PyruncError as e:
                        raise PyruncError(_creation_error(o.mode, f"error creating network interfaces: {e}")) from None
                # everything the state records is known now: write it while
                # the init mounts (a failure later removes the whole dir)
                _complete_state(state, init_pid, cg, nss, spec, o)
                sd.save(state)
            elif tag == "H":  # runc's procHooks
                apply_resources()  # before the hooks, which may rely on them (runc)
                hooks = spec.get("hooks") or {}
                if hooks.get("prestart") or hooks.get("createRuntime"):
                    from .. import hooks as H
                    st = oci_state({**state, "pid": init_pid}, "creating")
                    H.run_hooks("prestart", hooks.get("prestart") or [], st, cwd=bundle)
                    H.run_hooks("createRuntime", hooks.get("createRuntime") or [], st, cwd=bundle)
                reply("h")
            elif tag == "I":  # a mount source only the host side can open (rootfs/idmap.py)
                from ..rootfs.idmap import mount_source
                index, _, kind = payload.decode().partition(" ")
                m = spec["mounts"][int(index)]
                try:
                    src = mount_source(m, bundle, init_pid, kind)
                except PyruncError as e:
                    raise PyruncError(_creation_error(o.mode, f"error mounting {m.get('source', '')!r} to rootfs "
                                                              f"at {m.get('destination')!r}: {e}")) from None
                try:
                    ch.send("M", fds=[src] if src >= 0 else None)
                finally:
                    if src >= 0:
                        os.close(src)
            elif tag == "T":
                master = fds[0] if fds else None
            elif tag == "R":
                apply_resources()
                # as runc: rlimits are set from here (prlimit), so a refused
                # one is a create-time error, not a silent exit after start
                _set_rlimits(init_pid, process.get("rlimits") or [])
                break
            elif tag == "E":
                raise _init_error(o.mode, payload)
            else:
                raise _init_died(o.mode, cg)
        if o.pid_file:
            _write_pid_file(o.pid_file, init_pid)
        if master is not None and console is not None:
            from .. import terminal
            terminal.send_to_console_socket(console, master)
            os.close(master)
            master = None
        if o.pidfd_socket:
            send_pidfd(o.pidfd_socket, init_pid, "standard")
        if o.mode == "create":
            reply("k")
            # the init takes the container's ids and capabilities, then
            # closes the channel (EOF) and waits on the fifo; its error, if not
            t, payload, _ = ch.recv()
            if t == "E":
                raise _init_error(o.mode, payload)
            if t or proc_start_time(init_pid) != state["init_start"]:
                raise _init_died(o.mode, cg)
            ch.close()
            ch = None
        if log.debug_enabled():
            log.debug(f"{o.mode}: container {cid} created, init pid {init_pid}")
        return Launched(sd, state, ch, master, cg)
    except BaseException as e:
        if console is not None:
            console.close()
        _undo(sd, cg, init_pid, pid_s, ch, master)
        if host_bind:
            hostns.release(state["rootfs"], host_bind)
        if isinstance(e, (PyruncError, KeyboardInterrupt)):
            raise
        if isinstance(e, OSError):
            raise PyruncError(_creation_error(o.mode, e.strerror if not e.filename else
                                              f"{e.filename}: {e.strerror}")) from None
        raise


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


def _complete_state(state: dict, init_pid: int, cg, nss: dict, spec: dict, o: CreateOptions) -> None:
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
        try:
            with open(os.path.join(path, name)) as f:
                kills = next((int(line.split()[1]) for line in f if line.startswith("oom_kill ")), 0)
        except (OSError, TypeError, ValueError, IndexError):
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
    """Wait until a process we cannot reap (not our child) is gone or a zombie."""
    try:
        os.waitpid(pid, 0)
        return
    except ChildProcessError:
        pass
    end = time.monotonic() + timeout
    while proc_start_time(pid) is not None and time.monotonic() < end:
        time.sleep(0.002)


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
