"""Loading and validating config.json before anything on the host is touched.

The config stays a plain dict (JSON as the spec defines it): attribute models
would cost start-up time on every command for no safety a validator does not
give. Validation here is what must fail before a state dir or cgroup exists.
"""
from __future__ import annotations

import os

from ..errors import ConfigError

NS_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def load_config(bundle: str) -> dict:
    """Read <bundle>/config.json; one clear error for every way it can be wrong."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as e:
        if not os.path.isdir(bundle):
            raise ConfigError(f"bundle {bundle}: no such directory") from e
        raise ConfigError(f"JSON specification file {path} not found") from e
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror}") from e
    try:
        from ..fastjson import loads
        spec = loads(data)
    except ValueError as e:
        raise ConfigError(f"{path}: invalid JSON: {e}") from e
    if not isinstance(spec, dict):
        raise ConfigError("config cannot be null" if spec is None else f"{path}: config must be a JSON object")
    return spec


def _fail(msg: str, path: str | None = None) -> None:
    """A ConfigError; `path` is the field at fault, when there is one."""
    raise ConfigError(msg, path)


def validate_process(p: object, *, for_exec: bool = False) -> None:
    """runc's validateProcessSpec; the types are already checked (schema.check)."""
    if not p:
        _fail("process property must not be empty", "process")
    assert isinstance(p, dict)
    cwd = p.get("cwd", "")
    if not cwd:
        _fail("Cwd property must not be empty", "process.cwd")
    if not cwd.startswith("/"):
        _fail("Cwd must be an absolute path", "process.cwd")
    if not p.get("args"):
        _fail("args must not be empty", "process.args")
    if p.get("rlimits"):
        from ..linux.consts import RLIMITS
        for i, r in enumerate(p["rlimits"]):
            if r["type"] not in RLIMITS:
                _fail(f"wrong rlimit value: {r['type']}", f"process.rlimits[{i}].type")
    _validate_lsm(p)


def _validate_lsm(p: dict) -> None:
    """LSM labels (security/lsm.py applies them): runc's errors where the
    host has no such LSM, never a silently unconfined process."""
    from ..security import lsm
    if p.get("apparmorProfile") and not lsm.apparmor_enabled():
        _fail("apparmor: config provided but apparmor not supported", "process.apparmorProfile")
    if p.get("selinuxLabel") and not lsm.selinux_enabled():
        _fail("selinux label is specified in config, but selinux is disabled or not supported",
              "process.selinuxLabel")


def validate(spec: dict, bundle: str) -> None:
    """Everything checkable without side effects, so a bad config leaves nothing behind:
    first every field's type (schema.py), then what runc's validator checks."""
    from .schema import check
    check(spec)
    root = spec.get("root")
    if not root or not root.get("path"):
        _fail("root must be specified", "root.path")
    validate_process(spec.get("process"))
    rootfs = rootfs_path(spec, bundle)
    if not os.path.isdir(rootfs):
        _fail(f"rootfs ({rootfs}) does not exist" if not os.path.exists(rootfs)
              else f"rootfs ({rootfs}) is not a directory", "root.path")
    linux = spec.get("linux") or {}
    seen = set()
    for i, ns in enumerate(linux.get("namespaces") or []):
        t = ns["type"]
        if t not in NS_TYPES:
            _fail(f"namespace {_quote(t)} does not exist", f"linux.namespaces[{i}].type")
        if t in seen:
            _fail(f"malformed spec file: duplicated ns {_quote(t)}", f"linux.namespaces[{i}].type")
        seen.add(t)
        path = ns.get("path")
        if path:
            if not os.path.exists(path):
                _fail(f"namespace path {path} for {t} namespace: no such file or directory",
                      f"linux.namespaces[{i}].path")
    if "mount" not in seen and (linux.get("maskedPaths") or linux.get("readonlyPaths")):
        _fail("unable to restrict sys entries without a private MNT namespace",
              "linux.maskedPaths" if linux.get("maskedPaths") else "linux.readonlyPaths")
    if spec.get("hostname") and "uts" not in seen:
        _fail("unable to set hostname without a private UTS namespace", "hostname")
    if spec.get("domainname") and "uts" not in seen:
        _fail("unable to set domainname without a private UTS namespace", "domainname")
    if ("uidMappings" in linux or "gidMappings" in linux) and "user" not in seen:
        _fail("user namespace mappings specified, but user namespace isn't enabled in the config",
              "linux.uidMappings" if "uidMappings" in linux else "linux.gidMappings")
    if "user" in seen and not any(n.get("type") == "user" and n.get("path") for n in linux["namespaces"]):
        if not linux.get("uidMappings") or not linux.get("gidMappings"):
            _fail("user namespaces enabled, but no uid and gid mappings found",
                  "linux.uidMappings" if not linux.get("uidMappings") else "linux.gidMappings")
    if linux.get("intelRdt"):
        _fail("linux.intelRdt is not supported by pyrunc yet", "linux.intelRdt")
    if linux.get("memoryPolicy") is not None:  # runc: {} is an invalid mode
        from ..security.mempolicy import parse
        parse(linux["memoryPolicy"])
    if linux.get("mountLabel") and not os.path.exists("/sys/fs/selinux/enforce"):
        from .. import log  # runc ignores it without SELinux; say so
        log.warn("linux.mountLabel is ignored: SELinux is not enabled on this host")
    for i, d in enumerate(linux.get("devices") or ()):
        _validate_device(i, d)
    validate_sysctl(linux.get("sysctl") or {}, {n.get("type"): n.get("path") or ""
                                                for n in linux.get("namespaces") or []})
    for i, m in enumerate(spec.get("mounts") or []):
        if not m.get("destination"):
            _fail("invalid mount: destination must be specified", f"mounts[{i}].destination")
        if {"idmap", "ridmap"} & set(m.get("options") or []) or "uidMappings" in m or "gidMappings" in m:
            from ..rootfs.idmap import validate as validate_idmap  # also for mappings alone, as runc
            validate_idmap(m, "user" in seen, f"mounts[{i}]")
    for kind, hooks in (spec.get("hooks") or {}).items():
        if kind not in HOOK_KINDS:
            continue  # unknown: ignored, as runc does
        for j, h in enumerate(hooks or ()):
            if not h.get("path", "").startswith("/"):
                _fail(f"invalid {kind} hook: path {_quote(h.get('path', ''))} is not absolute",
                      f"hooks.{kind}[{j}].path")


def _validate_device(i: int, d: dict) -> None:
    """runc's stringToDeviceRune; the numbers must be ones the kernel's dev_t
    holds (12 bits of major, 20 of minor), not wrap into another device."""
    if d["type"] not in ("c", "u", "b", "p"):
        _fail(f"invalid device type {_quote(d['type'])}", f"linux.devices[{i}].type")
    for k, hi in (("major", 0xFFF), ("minor", 0xFFFFF)):
        if not 0 <= d.get(k, 0) <= hi:
            _fail(f"linux.devices[{i}].{k}: expected an integer from 0 to {hi}, got {d[k]}",
                  f"linux.devices[{i}].{k}")


def _quote(s: str) -> str:
    """Go's %q for the strings a config holds."""
    from ..fastjson import dumps
    return dumps(s, ascii=False)


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
            _fail(f"sysctl {key!r}: value must be a string", _sysctl(raw))
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if "ipc" not in nss:
                _fail(f"sysctl {key!r} is not allowed in the hosts ipc namespace", _sysctl(raw))
            continue
        if key.startswith("net."):
            path = nss.get("network")
            host = "network" not in nss or (path and _same_file(path, "/proc/self/ns/net"))
            if host:
                _fail(f"sysctl {key!r} not allowed in host network namespace", _sysctl(raw))
            continue
        if "uts" in nss:
            if key == "kernel.domainname":
                continue
            if key == "kernel.hostname":
                _fail(f"sysctl {key!r} is not allowed as it conflicts with the OCI \"hostname\" field", _sysctl(raw))
        if key.startswith("user."):
            if "user" not in nss:
                _fail(f"setting ucounts without a user namespace not allowed: {key}", _sysctl(raw))
            continue
        _fail(f"sysctl {key!r} is not in a separate kernel namespace", _sysctl(raw))


def _sysctl(key: str) -> str:
    """A sysctl's field path (only for an error: a dumps per key otherwise)."""
    from ..fastjson import key_path
    return key_path("linux.sysctl", key)


def _same_file(a: str, b: str) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError as e:
        raise ConfigError(f"invalid netns path: {e.filename}: {e.strerror}") from e
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def rootfs_path(spec: dict, bundle: str) -> str:
    p = (spec.get("root") or {}).get("path", "")
    return os.path.normpath(p if p.startswith("/") else os.path.join(bundle, p))


def namespaces(spec: dict) -> dict[str, str]:
    """type -> path ('' for a new namespace) of the namespaces the config asks for."""
    return {n["type"]: n.get("path") or "" for n in (spec.get("linux") or {}).get("namespaces") or []}
