"""`update`: change a live container's resources, as runc's update.go does.

    merge_update(old, upd) -> (stored, to_apply, ignored)
    update(root, cid, upd)           # lock, check, apply, persist

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


def _restore_set(old: dict, applied: dict) -> dict:
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


def update(root: str, cid: str, upd: dict, *, l3_cache_schema: str = "", mem_bw_schema: str = "") -> None:
    """Apply a resources update to a container and persist it in its state."""
    from .. import log
    from ..container.ops import load
    from ..spec.schema import RESOURCES, check
    check(upd, RESOURCES, "resources")  # -r's JSON (or a library caller's dict), typed as at create
    sd, st, status = load(root, cid)
    try:
        um = upd.get("memory") if isinstance(upd, dict) else None
        if isinstance(um, dict) and (um.get("kernel") is not None or um.get("kernelTCP") is not None):
            log.warn("Kernel memory settings are ignored and will be removed")
        config = st.get("config") or {}
        linux = config.get("linux") or {}
        new, apply, ignored = merge_update(linux.get("resources"), upd)
        for k in ignored:
            log.warn(f"linux.resources.{k} cannot be changed by update: ignored (as runc)")
        if l3_cache_schema or mem_bw_schema:
            _check_rdt(l3_cache_schema, mem_bw_schema, linux)
        if status == "stopped":
            from ..errors import InvalidState
            raise InvalidState("container not running", status)
        from . import manager_from_state
        cg = manager_from_state(st)
        from .resources import validate, is_v2
        validate(new, is_v2(cg.paths))  # the merged whole must still make sense (e.g. swap >= memory on v2)
        try:
            cg.set(apply)
        except PyruncError:
            restore = _restore_set(linux.get("resources") or {}, apply)
            if restore:
                try:
                    cg.set(restore)
                except PyruncError as e2:
                    log.warn(f"Setting back cgroup configs failed due to error: {e2}, your state.json and "
                             "actual configs might be inconsistent.")
            raise
        st.setdefault("config", {}).setdefault("linux", {})["resources"] = new
        sd.save(st)
    finally:
        sd.unlock()


def _check_rdt(l3: str, mb: str, linux: dict) -> None:
    import os
    if l3 and not os.path.isdir("/sys/fs/resctrl/info/L3"):
        raise PyruncError("Intel RDT/CAT: l3 cache schema is not enabled")
    if mb and not os.path.isdir("/sys/fs/resctrl/info/MB"):
        raise PyruncError("Intel RDT/MBA: memory bandwidth schema is not enabled")
    if not linux.get("intelRdt"):
        raise PyruncError("updating a non-existent Intel RDT configuration is not supported")
    raise PyruncError("Intel RDT is not supported by pyrunc")
