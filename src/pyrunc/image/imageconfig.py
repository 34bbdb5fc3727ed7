"""An image config (image-spec config.md) made into a bundle's config.json.

The mapping is umoci's (oci/config/convert MutateRuntimeSpec), on top of
the runtime's default spec (`pyrunc spec`): args = Entrypoint + Cmd, Env
merged by name, WorkingDir as cwd, User resolved against the rootfs's
/etc/passwd and /etc/group as moby/sys/user's GetExecUser does, labels and
the image's os/arch/author/created/stopSignal/exposedPorts as annotations,
Volumes as tmpfs mounts, terminal on, a writable root, no seccomp.
"""
from __future__ import annotations

import os

from ..rootfs.paths import open_in_root
from .layout import ImageError

_MAX_ID = (1 << 31) - 1


def _append_env(env: list[str], name: str, value: str) -> None:
    for i, old in enumerate(env):
        if old.startswith(name + "="):
            env[i] = f"{name}={value}"
            return
    env.append(f"{name}={value}")


def _read_in_root(rootfd: int, path: str) -> str | None:
    """A file of the rootfs (symlinks resolved inside it), or None."""
    try:
        fd = open_in_root(rootfd, path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(16 << 20).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _entries(text: str | None, nfields: int) -> list[list[str]] | None:
    if text is None:
        return None
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        out.append(parts + [""] * (nfields - len(parts)))
    return out


def _atoi(s: str) -> int | None:
    try:
        return int(s, 10) if s.lstrip("+-").isdigit() else None
    except ValueError:
        return None


def exec_user(spec: str, passwd: str | None, group: str | None) -> dict:
    """{uid, gid, sgids, home} for an image's User ("", name, uid,
    name:group, uid:gid, ...) as GetExecUser resolves it; raises ImageError."""
    user_arg, _, group_arg = spec.partition(":")
    uid_arg, gid_arg = _atoi(user_arg), _atoi(group_arg)
    res = {"uid": 0, "gid": 0, "sgids": [], "home": ""}
    users = _entries(passwd, 7)
    matched = ""
    found = None
    for u in users or []:
        uid = _atoi(u[2])
        if uid is None:
            continue
        if (user_arg == "" and uid == 0) or (uid_arg is not None and uid == uid_arg) or \
           (user_arg and uid_arg is None and u[0] == user_arg):
            found = u
            break
    if found is not None:
        matched = found[0]
        res.update(uid=_atoi(found[2]), gid=_atoi(found[3]) or 0, home=found[5])
    elif user_arg:
        if uid_arg is None:
            raise ImageError(f"cannot parse user spec: {spec!r}: unable to find user {user_arg}: no matching entries in passwd file")
        if not 0 <= uid_arg <= _MAX_ID:
            raise ImageError(f"cannot parse user spec: {spec!r}: uids and gids must be in range 0-{_MAX_ID}")
        res["uid"] = uid_arg
    if group_arg or matched:
        groups = []
        for g in _entries(group, 4) or []:
            gid = _atoi(g[2])
            if gid is None:
                continue
            if not group_arg:
                if matched in g[3].split(","):
                    groups.append(gid)
            elif (gid_arg is not None and gid == gid_arg) or (gid_arg is None and g[0] == group_arg):
                groups.append(gid)
        if group_arg:
            if groups:
                res["gid"] = groups[0]
            elif gid_arg is None:
                raise ImageError(f"cannot parse user spec: {spec!r}: unable to find group {group_arg}: no matching entries in group file")
            elif not 0 <= gid_arg <= _MAX_ID:
                raise ImageError(f"cannot parse user spec: {spec!r}: uids and gids must be in range 0-{_MAX_ID}")
            else:
                res["gid"] = gid_arg
        else:
            res["sgids"] = groups
    return res


def to_runtime_spec(image: dict, rootfs: str, uid_map: list | None = None, gid_map: list | None = None,
                    rootless: bool = False) -> dict:
    """The bundle's config.json for `image` unpacked at `rootfs`; with id
    maps (container, host, size), a user namespace with them, as umoci's
    UnpackRuntimeJSON adds; rootless, made fit for an unprivileged user."""
    from ..spec import example as E
    if image.get("os") != "linux":
        raise ImageError(f"unsupported OS: {image.get('os')}")
    cfg = image.get("config") or {}
    if not isinstance(cfg, dict):
        raise ImageError("image config: config is not an object")
    spec = E.example()
    proc = spec["process"]
    proc["terminal"] = True
    spec["root"] = {"path": os.path.basename(rootfs.rstrip("/"))}
    proc["cwd"] = cfg.get("WorkingDir") or "/"
    for env in _strlist(cfg, "Env"):
        name, eq, value = env.partition("=")
        if not eq:
            raise ImageError(f"parsing image.Config.Env: environment variable must contain '=': {env}")
        if not name:
            raise ImageError(f"parsing image.Config.Env: environment variable must have non-empty name: {env}")
        _append_env(proc["env"], name, value)
    args = _strlist(cfg, "Entrypoint") + _strlist(cfg, "Cmd")
    if args:
        proc["args"] = args
    ann = spec.setdefault("annotations", {})
    labels = cfg.get("Labels") or {}
    if isinstance(labels, dict):
        ann.update({str(k): str(v) for k, v in labels.items()})
    ann["org.opencontainers.image.os"] = image.get("os") or ""
    ann["org.opencontainers.image.architecture"] = image.get("architecture") or ""
    ann["org.opencontainers.image.author"] = image.get("author") or ""
    ann["org.opencontainers.image.created"] = image.get("created") or "0001-01-01T00:00:00Z"
    ann["org.opencontainers.image.stopSignal"] = cfg.get("StopSignal") or ""
    rootfd = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        u = exec_user(str(cfg.get("User") or ""), _read_in_root(rootfd, "/etc/passwd"),
                      _read_in_root(rootfd, "/etc/group"))
    finally:
        os.close(rootfd)
    proc["user"] = {"uid": u["uid"], "gid": u["gid"]}
    if u["sgids"]:
        proc["user"]["additionalGids"] = u["sgids"]
    if u["home"]:
        _append_env(proc["env"], "HOME", u["home"])
    ports = cfg.get("ExposedPorts") or {}
    ann["org.opencontainers.image.exposedPorts"] = ",".join(sorted(ports)) if isinstance(ports, dict) else ""
    vols = cfg.get("Volumes") or {}
    for vol in sorted(vols) if isinstance(vols, dict) else []:
        spec.setdefault("mounts", []).append({"destination": vol, "type": "tmpfs", "source": "none",
                                              "options": ["rw", "nosuid", "nodev", "noexec", "relatime"]})
    linux = spec.setdefault("linux", {})
    linux.pop("seccomp", None)
    if rootless:
        to_rootless(spec)
    if uid_map or gid_map:
        ns = [n for n in linux.get("namespaces", []) if n.get("type") != "user"]
        linux["namespaces"] = ns + [{"type": "user"}]
        for key, ranges in (("uidMappings", uid_map), ("gidMappings", gid_map)):
            if ranges:
                linux[key] = [{"containerID": c, "hostID": h, "size": n} for c, h, n in ranges]
    return spec


def to_rootless(spec: dict) -> None:
    """umoci unpack --rootless's changes to config.json: no additional
    groups, a user namespace and no network namespace of its own (the
    caller's id mapping is added by the caller), no cgroup resources, mount
    options without uid=/gid=, /sys as a read-only rbind of the host's
    (sysfs cannot be mounted without a network namespace) and the host's
    /etc/resolv.conf bound in."""
    spec.get("process", {}).get("user", {}).pop("additionalGids", None)
    linux = spec.setdefault("linux", {})
    ns = [n for n in linux.get("namespaces", []) if n.get("type") not in ("network", "user")]
    linux["namespaces"] = ns + [{"type": "user"}]
    linux.pop("resources", None)
    mounts = []
    for m in spec.get("mounts", []):
        if m.get("destination", "").startswith("/sys"):
            continue
        if "options" in m:
            m["options"] = [o for o in m["options"] if not o.startswith(("uid=", "gid="))]
        mounts.append(m)
    mounts.append({"destination": "/sys", "type": "bind", "source": "/sys",
                   "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    mounts.append({"destination": "/etc/resolv.conf", "type": "bind", "source": "/etc/resolv.conf",
                   "options": ["rbind", "ro"]})
    spec["mounts"] = mounts


def _strlist(cfg: dict, key: str) -> list[str]:
    v = cfg.get(key) or []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ImageError(f"image config: {key} is not a list of strings")
    return list(v)
