"""Writing linux.resources into cgroup files (v1 and v2 mappings as runc's).

Only the commonest controls live here for now; the full mapping (cpu, blkio,
hugetlb, devices, rdma, unified) belongs to the cgroups issue.
"""
from __future__ import annotations

import os

from ..errors import PyruncError


def _write(path: str, value: object) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise PyruncError(f"cgroup file {path} does not exist: controller not available") from None
    try:
        os.write(fd, str(value).encode())
    except OSError as e:
        raise PyruncError(f"failed to write {value!r} to {path}: {e.strerror}") from None
    finally:
        os.close(fd)


def apply_resources(paths: dict[str, str], r: dict) -> None:
    v2 = paths.get("") if "memory" not in paths else None
    mem = r.get("memory") or {}
    pids = r.get("pids") or {}
    if "memory" in paths:
        d = paths["memory"]
        limit, swap = mem.get("limit"), mem.get("swap")
        if limit is not None:
            _write(os.path.join(d, "memory.limit_in_bytes"), limit)
            memsw = os.path.join(d, "memory.memsw.limit_in_bytes")
            if os.path.exists(memsw):
                _write(memsw, swap if swap is not None else limit)
        if mem.get("reservation") is not None:
            _write(os.path.join(d, "memory.soft_limit_in_bytes"), mem["reservation"])
    elif v2 and mem.get("limit") is not None:
        _write(os.path.join(v2, "memory.max"), "max" if mem["limit"] < 0 else mem["limit"])
    if pids.get("limit") is not None:
        lim = "max" if pids["limit"] <= 0 else pids["limit"]
        d = paths.get("pids") or v2
        if d:
            _write(os.path.join(d, "pids.max"), lim)
