"""`pyrunc checkpoint`: dump a running container with CRIU, as runc 1.5's
Container.Checkpoint builds its request (criu_linux.go).

Failure leaves the container as it was (CRIU's own dump of a running tree is
all-or-nothing: the processes are resumed): one line says why, with the
first error of CRIU's log and where the log is.
"""
from __future__ import annotations

import json
import os

from ..errors import PyruncError
from . import proto as P
from . import swrk
from .options import CriuOpts, check_status_fd, from_flags, remove_if_empty

LOG_FILE = "dump.log"
DESCRIPTORS = "descriptors.json"
# the devices every container gets (rootfs/setup.py DEFAULT_DEVICES): runc's
# config.Devices holds them as well, and CRIU must see them as external
DEFAULT_DEVICE_PATHS = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")


def config_file(opts: dict, annotations: dict) -> None:
    """org.criu.config: a container's own CRIU configuration file ("" for
    none); without the annotation, runc's /etc/criu/runc.conf."""
    if "org.criu.config" in annotations:
        if annotations["org.criu.config"]:
            opts["config_file"] = annotations["org.criu.config"]
    else:
        opts["config_file"] = "/etc/criu/runc.conf"


def ns_key(ns: str) -> str:
    """runc's criuNsToKey: extRootNetNS, extRootPidNS."""
    return "extRoot" + ns[:1].upper() + ns[1:] + "NS"


def external_namespaces(opts: dict, config: dict, criu_version: int) -> None:
    """A network or pid namespace given by path is external to the dump:
    "<net|pid>[<inode>]:extRoot<Type>NS" (restore must supply it again)."""
    for typ, short, minimum in (("network", "net", 31100), ("pid", "pid", 31500)):
        if criu_version < minimum:
            raise PyruncError(f"criu lacks support for external {short} namespace during checkpointing "
                              "process (old criu version?)")
        path = next((n.get("path") for n in (config.get("linux") or {}).get("namespaces") or []
                     if n.get("type") == typ and n.get("path")), "")
        if path:
            try:
                ino = os.stat(path).st_ino
            except OSError as e:
                raise PyruncError(f"stat {path}: {os.strerror(e.errno or 0).lower()}") from None
            opts.setdefault("external", []).append(f"{short}[{ino}]:{ns_key(short)}")


def _unified() -> bool:
    from ..cgroups import hierarchies
    return set(hierarchies()) <= {""}


def _cgroup_binds(dest: str) -> list[str]:
    """cgroup v1 without a cgroup namespace: the container sees one bind mount
    per hierarchy under the cgroup mount (runc's getCgroupMounts)."""
    from ..cgroups import hierarchies
    return sorted({dest.rstrip("/") + "/" + os.path.basename(mp) for mp, _ in hierarchies().values()})


def external_mounts(config: dict, init_pid: int) -> list[dict]:
    """ext_mnt entries for the dump: bind mounts, cgroup v1 binds, masked
    files, device nodes (runc's addCriuDumpMount: key = val = destination)."""
    linux = config.get("linux") or {}
    cgroupns = any(n.get("type") == "cgroup" for n in linux.get("namespaces") or [])
    dests: list[str] = []
    for m in config.get("mounts") or []:
        opts = m.get("options") or []
        if m.get("type") == "bind" or "bind" in opts or "rbind" in opts:
            dests.append(m["destination"])
        elif m.get("type") == "cgroup" and not (_unified() or cgroupns):
            dests.extend(_cgroup_binds(m["destination"]))
    out = [{"key": os.path.normpath("/" + d.lstrip("/")), "val": os.path.normpath("/" + d.lstrip("/"))} for d in dests]
    for path in linux.get("maskedPaths") or []:
        try:
            if os.path.isdir(f"/proc/{init_pid}/root/{path}") or not os.path.exists(f"/proc/{init_pid}/root/{path}"):
                continue
        except OSError:
            continue
        out.append({"key": path, "val": "/dev/null"})
    devs = list(DEFAULT_DEVICE_PATHS) + [d.get("path") for d in linux.get("devices") or [] if d.get("path")]
    for d in dict.fromkeys(devs):
        out.append({"key": d, "val": d})
    return out


def descriptors(pid: int) -> list[str]:
    """What the init's stdio were (runc's externalDescriptors): restore hands
    pipes back to CRIU by these names."""
    out = []
    for fd in (0, 1, 2):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            out.append("/dev/null")
    return out


def build_request(o: CriuOpts, st: dict, images_fd: int, work_fd: int, criu_version: int) -> dict:
    """The DUMP / PRE_DUMP criu_req for the container in state `st`."""
    config = st.get("config") or {}
    opts: dict = {
        "images_dir_fd": images_fd, "log_level": 4, "log_file": LOG_FILE, "root": st["rootfs"],
        "manage_cgroups": True, "manage_cgroups_mode": o.cg_mode, "notify_scripts": True,
        "pid": st["pid"], "shell_job": o.shell_job, "leave_running": o.leave_running,
        "tcp_established": o.tcp_established, "tcp_skip_in_flight": o.tcp_skip_in_flight,
        "link_remap": o.link_remap, "ext_unix_sk": o.ext_unix_sk, "file_locks": o.file_locks,
        "empty_ns": o.empty_ns, "orphan_pts_master": True, "auto_dedup": o.auto_dedup,
        "lazy_pages": o.lazy_pages,
    }
    if work_fd >= 0:
        opts["work_dir_fd"] = work_fd
    config_file(opts, config.get("annotations") or {})
    external_namespaces(opts, config, criu_version)
    if st.get("freezer") and (not _unified() or criu_version >= 31400):
        opts["freeze_cgroup"] = st["freezer"]
    if o.page_server:
        opts["ps"] = {"address": o.page_server[0], "port": o.page_server[1]}
    if o.parent_image:
        opts["parent_img"] = o.parent_image
        opts["track_mem"] = True
    if o.lazy_pages and o.status_fd != -1 and criu_version < 31500:
        opts["status_fd"] = o.status_fd  # newer CRIU: the status-ready notification
    if not o.pre_dump:
        opts["ext_mnt"] = external_mounts(config, st["pid"])
    return {"type": P.REQ_TYPES["PRE_DUMP" if o.pre_dump else "DUMP"], "opts": opts}


def checkpoint(root: str, cid: str, flags: dict) -> None:
    from ..container.ops import destroy, load
    sd, st, status = load(root, cid)
    try:
        if status in ("created", "stopped"):
            from ..errors import InvalidState
            raise InvalidState(f"Container cannot be checkpointed in {status} state", status)
        o = from_flags(flags)
        try:
            _dump(sd, st, o)
        except BaseException:
            if o.created_images_dir:
                for name in (DESCRIPTORS,):
                    try:
                        os.unlink(os.path.join(o.images_dir, name))
                    except OSError:
                        pass
                remove_if_empty(o.images_dir)
            raise
        if not o.leave_running and not o.pre_dump:
            # CRIU has killed the processes: destroy what is left (runc)
            from ..container.state import status_of
            destroy(sd, st, status_of(st, sd.fifo))
    finally:
        sd.unlock()


def _open_dir(path: str) -> int:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise PyruncError(f"mkdir {path}: {os.strerror(e.errno or 0).lower()}") from None
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise PyruncError(f"open {path}: {os.strerror(e.errno or 0).lower()}") from None


def _dump(sd, st: dict, o: CriuOpts) -> None:
    version = swrk.version()
    swrk.check_version(version, 30000)
    if o.pre_dump:
        swrk.features({"mem_track": True})
    if o.lazy_pages:
        swrk.features({"lazy_pages": True})
        if o.status_fd != -1:
            check_status_fd(o.status_fd)
    images_fd = _open_dir(o.images_dir)
    work_fd = -1
    try:
        if o.work_dir:
            work_fd = _open_dir(o.work_dir)
        req = build_request(o, st, images_fd, work_fd, version)
        if not o.pre_dump:
            with open(os.path.join(o.images_dir, DESCRIPTORS), "w") as f:
                f.write(json.dumps(descriptors(st["pid"]), separators=(",", ":")))

        def notify(resp: dict, fds: list[int]) -> None:
            script = (resp.get("notify") or {}).get("script", "")
            if script == "post-dump":
                with open(os.path.join(sd.path, "checkpoint"), "w"):
                    pass
            elif script == "status-ready" and o.status_fd != -1:
                try:
                    os.write(o.status_fd, b"\0")
                    os.close(o.status_fd)
                except OSError:
                    pass
                o.status_fd = -1
        try:
            swrk.call(req, notify)
        except swrk.CriuError as e:
            raise swrk.CriuError(with_log(str(e), o.work_dir or o.images_dir, LOG_FILE)) from None
    finally:
        os.close(images_fd)
        if work_fd >= 0:
            os.close(work_fd)


def with_log(msg: str, log_dir: str, name: str) -> str:
    """The message, CRIU's first logged error and where the log is: one line."""
    path = os.path.join(log_dir, name)
    first = swrk.first_log_error(path)
    if first:
        msg += f": {first}"
    if os.path.exists(path):
        msg += f" (log: {path})"
    return msg
