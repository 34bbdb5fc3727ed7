"""Putting an exec'd process into the container's cgroup, or a sub-cgroup of
it (`exec --cgroup`), as runc's setnsProcess.addIntoCgroup does.

    parse_sub_cgroups(["memory:sub", "cpu,cpuacct:other"]) -> {"memory": "sub", ...}
    join_exec(paths, pid, subs, init_pid)

`--cgroup PATH` (one, no controller) is a sub-cgroup in every hierarchy (the
only form cgroup v2 has); `--cgroup CTRL[,CTRL...]:PATH` picks one per v1
controller, the others stay in the container's own cgroup. The sub-cgroup
must exist (the container made it) and stay below the container's cgroup.
On cgroup v2 without --cgroup, a container whose cgroup cannot take a
process (the init enabled a domain controller, or moved itself away and the
cgroup is gone) is joined where its init is instead.
"""
from __future__ import annotations

import os

from ..errors import PyruncError


def parse_sub_cgroups(args: list[str]) -> dict[str, str]:
    """runc's getSubCgroupPaths: controller -> sub path ("" for all)."""
    paths: dict[str, str] = {}
    for arg in args:
        ctrls, sep, path = arg.partition(":")
        if sep:
            for ctrl in ctrls.split(","):
                if not ctrl:
                    raise PyruncError(f"invalid --cgroup argument: {arg} (empty <controller> prefix)")
                if ctrl in paths:
                    raise PyruncError(f"invalid --cgroup argument(s): controller {ctrl} specified multiple times")
                paths[ctrl] = path
        else:
            if len(args) != 1:
                raise PyruncError(f"invalid --cgroup argument: {arg} (missing <controller>: prefix)")
            paths[""] = arg
    return paths


def sub_path(base: str, sub: str) -> str:
    """base joined with sub (Go's path.Join), refused if it leaves base."""
    path = os.path.normpath(base + "/" + sub) if sub else base
    if path != base and not path.startswith(base.rstrip("/") + "/"):
        raise PyruncError(f"bad sub cgroup path: {sub}")
    return path


def _gostr(e: OSError) -> str:
    s = os.strerror(e.errno) if e.errno else str(e)
    return s[:1].lower() + s[1:]


def write_procs(path: str, pid: int) -> None:
    """runc's WriteCgroupProc, with its error text."""
    procs = os.path.join(path, "cgroup.procs")
    try:
        fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise PyruncError(f"failed to write {pid}: openat2 {procs}: {_gostr(e)}") from None
    try:
        os.write(fd, str(pid).encode())
    except OSError as e:
        raise PyruncError(f"failed to write {pid}: write {procs}: {_gostr(e)}") from None
    finally:
        os.close(fd)


def _adding(pid: int, e: PyruncError) -> PyruncError:
    return PyruncError(f"error adding pid {pid} to cgroups: {e}")


def _key_of(paths: dict[str, str], ctrl: str) -> str | None:
    """The hierarchy key ("cpu,cpuacct", "name=systemd") carrying a controller."""
    if ctrl in paths:
        return ctrl
    return next((k for k in paths if k and ctrl in k.split(",")), None)


def join_exec(paths: dict[str, str], pid: int, subs: dict[str, str] | None = None, init_pid: int = 0) -> None:
    """Move pid into the container's cgroup (and the sub-cgroups asked for)."""
    subs = subs or {}
    if set(paths) == {""}:
        _join_v2(paths[""], pid, subs.get("", ""), init_pid)
        return
    if "" in subs or not subs:
        # one sub-cgroup (or none) in every v1 hierarchy; a hybrid host's
        # unified hierarchy holds no controller: the container's own cgroup
        sub = subs.get("", "")
        for key, base in paths.items():
            try:
                write_procs(sub_path(base, sub) if key else base, pid)
            except PyruncError as e:
                raise _adding(pid, e) from None
        return
    targets = dict(paths)
    for ctrl, sub in subs.items():
        ckey = _key_of(paths, ctrl)
        if ckey is None or not ckey:
            raise PyruncError(f"unknown controller {ctrl} in SubCgroupPaths")
        targets[ckey] = sub_path(paths[ckey], sub)
    for path in targets.values():
        try:
            write_procs(path, pid)
        except PyruncError as e:
            raise _adding(pid, e) from None


def _join_v2(base: str, pid: int, sub: str, init_pid: int) -> None:
    try:
        write_procs(sub_path(base, sub), pid)
        return
    except PyruncError as e:
        if sub or not init_pid:
            raise _adding(pid, e) from None
        err = e
    # runc: fall back to the cgroup the init is in now
    fallback = init_cgroup_dir(init_pid)
    if not fallback:
        raise _adding(pid, err)
    try:
        write_procs(fallback, pid)
    except PyruncError as e:
        raise _adding(pid, e) from None


def init_cgroup_dir(init_pid: int) -> str:
    """The unified-hierarchy directory of a process, from /proc/PID/cgroup."""
    try:
        with open(f"/proc/{init_pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    from . import hierarchies
    uni = hierarchies().get("")
    if uni is None:
        return ""
    mp, mroot = uni
    for line in lines:
        if line.startswith("0::"):
            rel = line[3:]
            if mroot != "/" and (rel + "/").startswith(mroot.rstrip("/") + "/"):
                rel = rel[len(mroot.rstrip("/")):] or "/"
            return os.path.join(mp, rel.lstrip("/"))
    return ""
