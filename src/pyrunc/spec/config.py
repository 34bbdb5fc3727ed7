"""Loading and validating config.json before anything on the host is touched.

The config stays a plain dict (JSON as the spec defines it): attribute models
would cost start-up time on every command for no safety a validator does not
give. Validation here is what must fail before a state dir or cgroup exists.
"""
from __future__ import annotations

import os

from ..errors import PyruncError

NS_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


def load_config(bundle: str) -> dict:
    """Read <bundle>/config.json; one clear error for every way it can be wrong."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        if not os.path.isdir(bundle):
            raise PyruncError(f"bundle {bundle}: no such directory") from None
        raise PyruncError(f"JSON specification file {path} not found") from None
    except OSError as e:
        raise PyruncError(f"{path}: {e.strerror}") from None
    try:
        from ..fastjson import loads
        spec = loads(data)
    except ValueError as e:
        raise PyruncError(f"{path}: invalid JSON: {e}") from None
    if not isinstance(spec, dict):
        raise PyruncError("config cannot be null" if spec is None else f"{path}: config must be a JSON object")
    return spec


def _fail(msg: str) -> None:
    raise PyruncError(msg)


def _type(v: object, t: type | tuple, what: str) -> None:
    if not isinstance(v, t) or (t is int and isinstance(v, bool)):
        _fail(f"invalid config: {what} has the wrong type")


def validate_process(p: object, *, for_exec: bool = False) -> None:
    """runc's validateProcessSpec plus type checks on the fields pyrunc reads."""
    if p is None:
        _fail("process property must not be empty")
    _type(p, dict, "process")
    assert isinstance(p, dict)
    cwd = p.get("cwd", "")
    if not cwd:
        _fail("Cwd property must not be empty")
    _type(cwd, str, "process.cwd")
    if not cwd.startswith("/"):
        _fail("Cwd must be an absolute path")
    args = p.get("args")
    if not args:
        _fail("args must not be empty")
    _type(args, list, "process.args")
    for a in args:
        _type(a, str, "process.args")
    for e in p.get("env") or []:
        _type(e, str, "process.env")
    user = p.get("user") or {}
    _type(user, dict, "process.user")
    for k in ("uid", "gid", "umask"):
        if k in user:
            _type(user[k], int, f"process.user.{k}")
    for g in user.get("additionalGids") or []:
        _type(g, int, "process.user.additionalGids")
    for r in p.get("rlimits") or []:
        _type(r, dict, "process.rlimits")
        if not str(r.get("type", "")).startswith("RLIMIT_"):
            _fail(f"invalid rlimit type {r.get('type')!r}")
    cs = p.get("consoleSize")
    if cs is not None:
        _type(cs, dict, "process.consoleSize")
    _validate_lsm(p)


def _validate_lsm(p: dict) -> None:
    """LSM labels (security/lsm.py applies them): runc's errors where the
    host has no such LSM, never a silently unconfined process."""
    from ..security import lsm
    if p.get("apparmorProfile") and not lsm.apparmor_enabled():
        _fail("apparmor: config provided but apparmor not supported")
    if p.get("selinuxLabel") and not lsm.selinux_enabled():
        _fail("selinux label is specified in config, but selinux is disabled or not supported")


def validate(spec: dict, bundle: str) -> None:
    """Everything checkable without side effects, so a bad config leaves nothing behind."""
    root = spec.get("root")
    if not isinstance(root, dict) or not root.get("path"):
        _fail("root must be specified")
    validate_process(spec.get("process"))
    rootfs = rootfs_path(spec, bundle)
    if not os.path.isdir(rootfs):
        _fail(f"rootfs ({rootfs}) does not exist" if not os.path.exists(rootfs)
              else f"rootfs ({rootfs}) is not a directory")
    linux = spec.get("linux") or {}
    _type(linux, dict, "linux")
    seen = set()
    for ns in linux.get("namespaces") or []:
        _type(ns, dict, "linux.namespaces")
        t = ns.get("type")
        if t not in NS_TYPES:
            _fail(f"namespace {t!r} does not exist")
        if t in seen:
            _fail(f"malformed spec file: duplicated ns {t!r}")
        seen.add(t)
        path = ns.get("path")
        if path:
            _type(path, str, f"linux.namespaces[{t}].path")
            if not os.path.exists(path):
                _fail(f"namespace path {path} for {t} namespace: no such file or directory")
    if "mount" not in seen and (linux.get("maskedPaths") or linux.get("readonlyPaths")):
        _fail("unable to restrict sys entries without a private MNT namespace")
    if spec.get("hostname") and "uts" not in seen:
        _fail("unable to set hostname without a private UTS namespace")
    if spec.get("domainname") and "uts" not in seen:
        _fail("unable to set domainname without a private UTS namespace")
    if ("uidMappings" in linux or "gidMappings" in linux) and "user" not in seen:
        _fail("user namespace mappings specified, but user namespace isn't enabled in the config")
    if "user" in seen and not any(n.get("type") == "user" and n.get("path") for n in linux["namespaces"]):
        if not linux.get("uidMappings") or not linux.get("gidMappings"):
            _fail("user namespaces enabled, but no uid and gid mappings found")
    if linux.get("intelRdt"):
        _fail("linux.intelRdt is not supported by pyrunc yet")
    if linux.get("memoryPolicy") is not None:  # runc: {} is an invalid mode
        from ..security.mempolicy import parse
        parse(linux["memoryPolicy"])
    if linux.get("mountLabel") and not os.path.exists("/sys/fs/selinux/enforce"):
        from .. import log  # runc ignores it without SELinux; say so
        log.warn("linux.mountLabel is ignored: SELinux is not enabled on this host")
    validate_sysctl(linux.get("sysctl") or {}, {n.get("type"): n.get("path") or ""
                                                for n in linux.get("namespaces") or []})
    for m in spec.get("mounts") or []:
        _type(m, dict, "mounts")
        dest = m.get("destination")
        if not dest or not isinstance(dest, str):
            _fail("invalid mount: destination must be specified")
        if {"idmap", "ridmap"} & set(m.get("options") or []) or "uidMappings" in m or "gidMappings" in m:
            from ..rootfs.idmap import validate as validate_idmap  # also for mappings alone, as runc
            validate_idmap(m, "user" in seen)
    for kind, hooks in (spec.get("hooks") or {}).items():
        _type(hooks, list, f"hooks.{kind}")
        for h in hooks:
            _type(h, dict, f"hooks.{kind}")
            if not str(h.get("path", "")).startswith("/"):
                _fail(f"invalid {kind} hook: path {h.get('path')!r} is not absolute")


_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


def sysctl_dots(key: str) -> str:
    """runc accepts net/ipv4/ip_forward too: a key whose first separator is
    '/' has its '.' and '/' swapped (so interface names may hold dots)."""
    i = next((n for n, c in enumerate(key) if c in "./"), -1)
    if i < 0 or key[i] == ".":
        return key
    return key.translate(str.maketrans("./", "/."))


def sysctl_path(key: str) -> str:
    return "/proc/sys/" + sysctl_dots(key).translate(str.maketrans("./", "/."))


def validate_sysctl(sysctl: dict, nss: dict[str, str]) -> None:
    """Only namespaced keys, each in a namespace the container owns (runc's rules)."""
    for raw, value in sysctl.items():
        key = sysctl_dots(raw)
        if not isinstance(value, str):
            _fail(f"sysctl {key!r}: value must be a string")
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if "ipc" not in nss:
                _fail(f"sysctl {key!r} is not allowed in the hosts ipc namespace")
            continue
        if key.startswith("net."):
            path = nss.get("network")
            host = "network" not in nss or (path and _same_file(path, "/proc/self/ns/net"))
            if host:
                _fail(f"sysctl {key!r} not allowed in host network namespace")
            continue
        if "uts" in nss:
            if key == "kernel.domainname":
                continue
            if key == "kernel.hostname":
                _fail(f"sysctl {key!r} is not allowed as it conflicts with the OCI \"hostname\" field")
        if key.startswith("user."):
            if "user" not in nss:
                _fail(f"setting ucounts without a user namespace not allowed: {key}")
            continue
        _fail(f"sysctl {key!r} is not in a separate kernel namespace")


def _same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError as e:
        _fail(f"invalid netns path: {e.filename}: {e.strerror}")
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def rootfs_path(spec: dict, bundle: str) -> str:
    p = (spec.get("root") or {}).get("path", "")
    return os.path.normpath(p if p.startswith("/") else os.path.join(bundle, p))


def namespaces(spec: dict) -> dict[str, str]:
    """type -> path ('' for a new namespace) of the namespaces the config asks for."""
    return {n["type"]: n.get("path") or "" for n in (spec.get("linux") or {}).get("namespaces") or []}
