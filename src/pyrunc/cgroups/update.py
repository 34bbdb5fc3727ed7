"""`update`: change a live container's resources, as runc's update.go does.

    merge_update(old, upd) -> (stored, to_apply, ignored)
    restore_set(old, applied)        # what puts back a failed update

container/update.py locks the container, checks, applies and persists with
these.

`upd` is a spec-form linux.resources fragment (what `update -r` reads, or
what the flags build). What runc's update applies: memory limit, reservation,
swap (and checkBeforeUpdate), every cpu field, pids.limit, blockIO weight,
leafWeight and per-device entries (updated in place or added), and unified.
Everything else (devices, hugepageLimits, network, rdma, swappiness,
disableOOMKiller, kernel memory) runc does not update: pyrunc warns and
leaves it.

Only the fields given (and the ones the kernel needs written with them:
memory with swap, quota with period, the two realtime values) are written,
which leaves the cgroup as runc's full re-apply does. The container's
state.json keeps the whole merged linux.resources, so a later update starts
from it. Two deliberate differences from runc's bookkeeping: values not given
keep their old value (runc forgets cpus, mems, idle, burst, pids and, when
neither is given, quota and period), so `update --cpu-quota` after an
unrelated update does not reset a v2 period to 100000; and a failed update
restores the old values of the fields it touched (runc re-applies a config
that already holds the new values).
"""
from __future__ import annotations

import copy

from ..errors import ConfigError, PyruncError

_MEMORY_FIELDS = ("limit", "reservation", "swap", "checkBeforeUpdate")
_CPU_FIELDS = ("shares", "quota", "period", "burst", "realtimeRuntime", "realtimePeriod", "cpus", "mems", "idle")
_THROTTLES = ("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice")


def _given(d: dict | None, key: str) -> bool:
    return isinstance(d, dict) and d.get(key) is not None


def merge_update(old: dict | None, upd: dict) -> tuple[dict, dict, list[str]]:
    """(new stored linux.resources, the resources to write now, ignored keys)."""
    if not isinstance(upd, dict):
        raise ConfigError("invalid resources: must be a JSON object", "resources")
    old = copy.deepcopy(old or {})
    new = copy.deepcopy(old)
    apply: dict = {}
    ignored: list[str] = []
    for k, v in upd.items():
        if k not in ("memory", "cpu", "pids", "blockIO", "unified") and v not in (None, [], {}):
            ignored.append(k)

    # memory
    um = upd.get("memory")
    if um is not None:
        if not isinstance(um, dict):
            raise ConfigError("invalid resources: memory must be an object", "resources.memory")
        for k in um:
            if k not in _MEMORY_FIELDS and k not in ("kernel", "kernelTCP") and um[k] is not None:
                ignored.append(f"memory.{k}")
        um = dict(um)
        if um.get("limit") == -1 and um.get("swap") is None:
            um["swap"] = 0  # as runc: "unable to set swap limit without memory limit" otherwise
        nm = new.setdefault("memory", {}) if any(_given(um, k) for k in _MEMORY_FIELDS) else new.get("memory", {})
        for k in ("limit", "reservation", "swap"):
            if _given(um, k):
                nm[k] = um[k]
        if nm.get("swap") == 0:
            nm.pop("swap", None)
        am: dict = {}
        if _given(um, "limit") or _given(um, "swap"):
            for k in ("limit", "swap"):
                if nm.get(k) is not None:
                    am[k] = nm[k]
            if _given(um, "swap") and um["swap"] == 0 and um.get("limit") == -1:
                am["swap"] = 0
        if _given(um, "reservation"):
            am["reservation"] = um["reservation"]
        if am:
            am["checkBeforeUpdate"] = bool(um.get("checkBeforeUpdate"))
            apply["memory"] = am

    # cpu
    uc = upd.get("cpu")
    if uc is not None:
        if not isinstance(uc, dict):
            raise ConfigError("invalid resources: cpu must be an object", "resources.cpu")
        for k in uc:
            if k not in _CPU_FIELDS and uc[k] is not None:
                ignored.append(f"cpu.{k}")
        nc = new.setdefault("cpu", {}) if any(_given(uc, k) for k in _CPU_FIELDS) else new.get("cpu", {})
        ac: dict = {}
        p, q = uc.get("period") or 0, uc.get("quota") or 0
        if p and q:
            nc["period"], nc["quota"] = p, q
        elif p:
            nc["period"] = p
        elif q:
            nc["quota"] = q
        if p or q:
            ac["period"], ac["quota"] = nc.get("period") or 0, nc.get("quota") or 0
        for k in ("shares", "burst", "idle"):
            if _given(uc, k):
                nc[k] = ac[k] = uc[k]
        if _given(uc, "realtimePeriod") or _given(uc, "realtimeRuntime"):
            for k in ("realtimePeriod", "realtimeRuntime"):
                if _given(uc, k):
                    nc[k] = uc[k]
                if nc.get(k) is not None:
                    ac[k] = nc[k]
        for k in ("cpus", "mems"):
            if uc.get(k):
                nc[k] = ac[k] = uc[k]
        if ac:
            apply["cpu"] = ac

    # pids
    up = upd.get("pids")
    if up is not None:
        if not isinstance(up, dict):
            raise ConfigError("invalid resources: pids must be an object", "resources.pids")
        if _given(up, "limit"):
            new.setdefault("pids", {})["limit"] = up["limit"]
            apply["pids"] = {"limit": up["limit"]}

    # blockIO
    ub = upd.get("blockIO")
    if ub is not None:
        if not isinstance(ub, dict):
            raise ConfigError("invalid resources: blockIO must be an object", "resources.blockIO")
        nb = new.setdefault("blockIO", {})
        ab: dict = {}
        for k in ("weight", "leafWeight"):
            if _given(ub, k):
                nb[k] = ab[k] = ub[k]
        for wd in ub.get("weightDevice") or []:
            if not isinstance(wd, dict):
                raise ConfigError("invalid resources: blockIO.weightDevice entries must be objects",
                                  "resources.blockIO.weightDevice")
            entry = _upsert_weight(nb.setdefault("weightDevice", []), wd)
            ab.setdefault("weightDevice", []).append(dict(entry))
        for key in _THROTTLES:
            for td in ub.get(key) or []:
                if not isinstance(td, dict):
                    raise ConfigError(f"invalid resources: blockIO.{key} entries must be objects",
                                      f"resources.blockIO.{key}")
                lst = nb.setdefault(key, [])
                for cur in reversed(lst):
                    if cur.get("major") == td.get("major") and cur.get("minor") == td.get("minor"):
                        cur["rate"] = td.get("rate") or 0
                        break
                else:
                    lst.append({"major": td.get("major") or 0, "minor": td.get("minor") or 0, "rate": td.get("rate") or 0})
                ab.setdefault(key, []).append({"major": td.get("major") or 0, "minor": td.get("minor") or 0,
                                               "rate": td.get("rate") or 0})
        if not nb:
            new.pop("blockIO")
        if ab:
            apply["blockIO"] = ab

    # unified
    uu = upd.get("unified")
    if uu:
        if not isinstance(uu, dict):
            raise ConfigError("invalid resources: unified must be an object", "resources.unified")
        new.setdefault("unified", {}).update(uu)
        apply["unified"] = dict(uu)

    for k in ("memory", "cpu"):
        if k in new and not new[k]:
            del new[k]
    return new, apply, ignored


def _upsert_weight(lst: list, wd: dict) -> dict:
    for cur in reversed(lst):
        if cur.get("major") == wd.get("major") and cur.get("minor") == wd.get("minor"):
            for k in ("weight", "leafWeight"):
                if wd.get(k) is not None:
                    cur[k] = wd[k]
            return cur
    entry = {"major": wd.get("major") or 0, "minor": wd.get("minor") or 0}
    for k in ("weight", "leafWeight"):
        if wd.get(k) is not None:
            entry[k] = wd[k]
    lst.append(entry)
    return entry


def restore_set(old: dict, applied: dict) -> dict:
    """The old values of the fields an update wrote (best effort undo)."""
    out: dict = {}
    for section, fields in applied.items():
        prev = old.get(section)
        if section == "unified" or not isinstance(prev, dict):
            continue
        if section == "blockIO":
            vals = {k: prev[k] for k in ("weight", "leafWeight") if k in fields and prev.get(k) is not None}
            for key in ("weightDevice", *_THROTTLES):
                devs = {(d.get("major"), d.get("minor")) for d in fields.get(key) or []}
                keep = [d for d in prev.get(key) or [] if (d.get("major"), d.get("minor")) in devs]
                if keep:
                    vals[key] = keep
        else:
            vals = {k: prev[k] for k in fields if prev.get(k) is not None and k != "checkBeforeUpdate"}
        if vals:
            out[section] = vals
    return out
