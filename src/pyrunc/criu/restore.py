"""`pyrunc restore`: a new container from a checkpoint, with CRIU, as runc
1.5's startContainer(CT_ACT_RESTORE) and Container.Restore do it.

Order: the flags, the bundle's config and the checkpoint (CRIU's version,
the image directory's descriptors.json) are checked before anything exists;
then the state dir, the cgroup (CRIU is put into it, with the resources, so
the restored tree lands there), the rootfs bind-mounted on
<state dir>/criu-root (CRIU wants a mount point whose parent is not
overmounted), and the RESTORE request. CRIU's notifications run the
prestart/createRuntime hooks (setup-namespaces), send a terminal to the
console socket (orphan-pts-master) and give the restored init's pid
(post-restore), at which point the state is written. Any failure undoes it
all. The restored init is a sibling of CRIU (rst_sibling), i.e. our child:
in the foreground we wait for it as `run` does.
"""
from __future__ import annotations

import json
import os
import time

from ..errors import PyruncError
from . import proto as P
from . import swrk
from .checkpoint import DEFAULT_DEVICE_PATHS, DESCRIPTORS, _cgroup_binds, _unified, config_file, ns_key, with_log
from .options import CriuOpts

LOG_FILE = "restore.log"


class RestoreOptions:
    __slots__ = ("bundle", "detach", "pid_file", "console_socket", "no_subreaper", "no_pivot", "rootless",
                 "systemd_cgroup", "stdio")

    def __init__(self, bundle: str = "", detach: bool = False, pid_file: str = "", console_socket: str = "",
                 no_subreaper: bool = False, no_pivot: bool = False, rootless: str = "auto",
                 systemd_cgroup: bool = False, stdio: tuple[int, int, int] | None = None) -> None:
        self.bundle, self.detach, self.pid_file = bundle, detach, pid_file
        self.console_socket, self.no_subreaper, self.no_pivot = console_socket, no_subreaper, no_pivot
        self.rootless, self.systemd_cgroup = rootless, systemd_cgroup
        # the library's callers (the shim): the restored process's fds 0-2,
        # given to CRIU for every stdio descriptor of the dump, not only pipes
        self.stdio = stdio


def read_descriptors(images_dir: str) -> list[str]:
    path = os.path.join(images_dir, DESCRIPTORS)
    try:
        with open(path) as f:
            fds = json.load(f)
    except OSError as e:
        raise PyruncError(f"open {path}: {os.strerror(e.errno or 0).lower()}") from None
    except ValueError as e:
        raise PyruncError(f"{path}: invalid JSON: {e}") from None
    if not isinstance(fds, list) or not all(isinstance(s, str) for s in fds):
        raise PyruncError(f"{path}: expected an array of strings")
    return fds


def restore_mounts(config: dict) -> list[dict]:
    """ext_mnt for the restore (runc's addCriuRestoreMount): each external
    mount of the dump (key) is the host's source again (val)."""
    linux = config.get("linux") or {}
    cgroupns = any(n.get("type") == "cgroup" for n in linux.get("namespaces") or [])
    out = []
    for m in config.get("mounts") or []:
        opts = m.get("options") or []
        dest = os.path.normpath("/" + m.get("destination", "").lstrip("/"))
        if m.get("type") == "bind" or "bind" in opts or "rbind" in opts:
            out.append({"key": dest, "val": m.get("source", "")})
        elif m.get("type") == "cgroup" and not (_unified() or cgroupns):
            from ..cgroups import hierarchies
            for mp, _ in hierarchies().values():
                out.append({"key": dest.rstrip("/") + "/" + os.path.basename(mp), "val": mp})
    if linux.get("maskedPaths"):
        out.append({"key": "/dev/null", "val": "/dev/null"})
    devs = list(DEFAULT_DEVICE_PATHS) + [d.get("path") for d in linux.get("devices") or [] if d.get("path")]
    out += [{"key": d, "val": d} for d in dict.fromkeys(devs)]
    return out


def namespaces(opts: dict, config: dict, criu_version: int, extra: list[int]) -> None:
    """Namespaces given by path: net and pid are handed to CRIU as inherited
    fds (extRoot<Type>NS, the dump's key), the others are joined (join_ns);
    a cgroup namespace by path cannot be restored (runc)."""
    for ns in (config.get("linux") or {}).get("namespaces") or []:
        typ, path = ns.get("type"), ns.get("path") or ""
        if typ in ("network", "pid"):
            short = "net" if typ == "network" else "pid"
            if criu_version < (31100 if typ == "network" else 31500):
                raise PyruncError(f"criu lacks support for external {short} namespace during the restoration "
                                  "process (old criu version?)")
            if not path:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                raise PyruncError(f"Requested network namespace {path} does not exist") from None
            opts.setdefault("inherit_fd", []).append({"key": ns_key(short), "fd": 4 + len(extra)})
            extra.append(fd)
        elif path:
            if typ == "cgroup":
                raise PyruncError("Do not know how to handle namespace NEWCGROUP")
            short = {"mount": "mnt", "user": "user", "ipc": "ipc", "uts": "uts", "time": "time"}.get(typ, typ)
            opts.setdefault("join_ns", []).append({"ns": short, "ns_file": path})


def restore(root: str, cid: str, flags: dict, ro: RestoreOptions) -> int:
    """Restore the container; the exit status for the command line."""
    from ..container.state import validate_id
    validate_id(cid)
    from .options import from_flags, remove_if_empty
    o = from_flags(flags, restore=True)  # makes the images dir, as runc
    try:
        return _checked_restore(root, cid, flags, ro, o)
    except BaseException:
        if o.created_images_dir:
            remove_if_empty(o.images_dir)
        raise


def _checked_restore(root: str, cid: str, flags: dict, ro: RestoreOptions, o: CriuOpts) -> int:
    from ..spec import config as spec_config
    bundle = os.path.abspath(ro.bundle or ".")
    spec = spec_config.load_config(bundle)
    spec_config.validate(spec, bundle)
    terminal = bool(spec["process"].get("terminal"))
    if terminal and ro.detach and not ro.console_socket:
        raise PyruncError("cannot allocate tty if pyrunc will detach without setting console socket")
    if terminal and not ro.console_socket:  # runc proxies it; pyrunc cannot yet
        raise PyruncError("restoring a container with a terminal needs --console-socket")
    if ro.console_socket and not terminal:
        raise PyruncError("cannot use console socket if pyrunc will not detach or allocate tty")
    version = swrk.version()
    swrk.check_version(version, 30000)
    if o.lsm_profile and version < 31600:
        raise PyruncError("--lsm-profile requires at least CRIU 3.16")
    if o.lsm_mount_context and version < 31600:
        raise PyruncError("--lsm-mount-context requires at least CRIU 3.16")
    fds = read_descriptors(o.images_dir)
    return _restore(root, cid, spec, bundle, o, ro, fds, version)


def _restore(root: str, cid: str, spec: dict, bundle: str, o: CriuOpts, ro: RestoreOptions,
             descriptors: list[str], version: int) -> int:
    from ..container.launch import _complete_state, _write_pid_file
    from ..container.state import OCI_VERSION, StateDir, rfc3339nano
    from ..linux import consts as C
    from ..linux import sys as L
    from ..spec import config as spec_config
    console = None
    if ro.console_socket:
        from ..terminal import connect_console_socket
        console = connect_console_socket(ro.console_socket)
    sd = StateDir(root, cid)
    sd.create()
    cg = None
    init_pid = 0
    mounted = ""
    extra: list[int] = []
    dir_fds: list[int] = []
    linux = spec.get("linux") or {}
    state: dict = {"ociVersion": spec.get("ociVersion") or OCI_VERSION, "id": cid, "pid": 0, "bundle": bundle,
             "rootfs": spec_config.rootfs_path(spec, bundle), "created": rfc3339nano(time.time_ns()),
             "owner": "", "annotations": spec.get("annotations") or {}}
    try:
        from ..cgroups import is_rootless, new_manager
        cg = new_manager(linux.get("cgroupsPath") or "", cid, is_rootless(ro.rootless), ro.systemd_cgroup,
                         spec.get("annotations"))
        cg.check(linux.get("resources") or {}, linux.get("devices"))
        images_fd = os.open(o.images_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        dir_fds.append(images_fd)
        criu_root = os.path.join(sd.path, "criu-root")
        os.mkdir(criu_root, 0o755)
        criu_root = os.path.realpath(criu_root)
        L.mount(state["rootfs"], criu_root, None, C.MS_BIND | C.MS_REC)
        mounted = criu_root
        opts: dict = {
            "images_dir_fd": images_fd, "evasive_devices": True, "log_level": 4, "log_file": LOG_FILE,
            "rst_sibling": True, "root": criu_root, "manage_cgroups": True, "manage_cgroups_mode": o.cg_mode,
            "notify_scripts": True, "shell_job": o.shell_job, "ext_unix_sk": o.ext_unix_sk,
            "tcp_established": o.tcp_established, "file_locks": o.file_locks, "empty_ns": o.empty_ns,
            "orphan_pts_master": True, "auto_dedup": o.auto_dedup, "lazy_pages": o.lazy_pages,
        }
        if o.lsm_profile:
            opts["lsm_profile"] = o.lsm_profile
        if o.lsm_mount_context:
            opts["lsm_mount_context"] = o.lsm_mount_context
        if o.work_dir:
            try:
                os.mkdir(o.work_dir, 0o700)
            except FileExistsError:
                pass
            work_fd = os.open(o.work_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            dir_fds.append(work_fd)
            opts["work_dir_fd"] = work_fd
        config_file(opts, spec.get("annotations") or {})
        namespaces(opts, spec, version, extra)
        opts["ext_mnt"] = restore_mounts(spec)
        for i, s in enumerate(descriptors):
            if "pipe:" in s or (ro.stdio is not None and i < 3 and s):
                opts.setdefault("inherit_fd", []).append({"key": s, "fd": i})
        req = {"type": P.REQ_TYPES["RESTORE"], "opts": opts}

        def on_start(criu_pid: int) -> None:  # runc's criuApplyCgroups
            cg.create()
            cg.add(criu_pid)
            cg.apply(linux.get("resources") or {}, linux.get("devices"))
            roots = []
            with open(f"/proc/{criu_pid}/cgroup") as f:
                for line in f:
                    _, ctrls, path = line.rstrip("\n").split(":", 2)
                    for ctrl in (ctrls.split(",") if ctrls else [""]):
                        roots.append({"ctrl": ctrl.removeprefix("name="), "path": path} if ctrl
                                     else {"path": path})
            opts["cg_root"] = roots

        def notify(resp: dict, fds: list[int]) -> None:
            nonlocal init_pid
            n = resp.get("notify") or {}
            script = n.get("script", "")
            if script == "setup-namespaces":
                hooks = spec.get("hooks") or {}
                if hooks.get("prestart") or hooks.get("createRuntime"):
                    from .. import hooks as H
                    from ..container.state import oci_state
                    st = oci_state({**state, "pid": n.get("pid", 0)}, "creating")
                    H.run_hooks("prestart", hooks.get("prestart") or [], st)
                    H.run_hooks("createRuntime", hooks.get("createRuntime") or [], st)
            elif script == "post-restore":
                init_pid = int(n.get("pid", 0))
                _complete_state(state, init_pid, cg, spec_config.namespaces(spec), spec, _Opts(ro))
                sd.save(state)
            elif script == "orphan-pts-master" and fds and console is not None:
                from .. import terminal
                terminal.send_to_console_socket(console, fds[0])

        try:
            swrk.call(req, notify, tuple(extra), inherit_stdio=True, on_start=on_start, stdio=ro.stdio)
        except swrk.CriuError as e:
            raise swrk.CriuError(with_log(str(e), o.work_dir or o.images_dir, LOG_FILE)) from None
        if not init_pid:
            raise PyruncError("criu failed: no post-restore notification with the restored pid")
    except BaseException as e:
        from ..container.launch import _undo
        _cleanup(mounted, extra, dir_fds)
        if console is not None:
            console.close()
        _undo(sd, cg, init_pid, 0, None, None)
        if isinstance(e, OSError):
            raise PyruncError(f"pyrunc restore failed: {e.filename + ': ' if e.filename else ''}"
                              f"{os.strerror(e.errno or 0).lower()}") from None
        raise
    _cleanup(mounted, extra, dir_fds)
    if console is not None:
        console.close()
    if ro.pid_file:
        _write_pid_file(ro.pid_file, init_pid)
    if ro.detach:
        sd.unlock()
        return 0
    return _foreground(sd, state, init_pid)


class _Opts:
    """What _complete_state reads of create's options."""

    def __init__(self, ro: RestoreOptions) -> None:
        self.systemd_cgroup = ro.systemd_cgroup
        self.no_new_keyring = False


def _cleanup(mounted: str, extra: list[int], dir_fds: list[int]) -> None:
    for fd in extra + dir_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    if mounted:
        from ..linux import sys as L
        try:
            L.umount2(mounted, 2)  # MNT_DETACH
        except OSError:
            pass
        try:
            os.rmdir(mounted)
        except OSError:
            pass


def _foreground(sd, state: dict, pid: int) -> int:
    """As `run`: forward signals until the restored init exits, then delete."""
    from ..container import foreground as F
    from ..container.ops import destroy
    from ..container.state import status_of
    fwd = F.Forwarder()
    sd.unlock()
    try:
        status = F.wait_foreground(pid, fwd, None)
    finally:
        fwd.close()
    sd.lock()
    destroy(sd, state, status_of(state, sd.fifo))
    return status
