"""`pyrunc update` / Container.update: lock the container, check the new
linux.resources, apply them to its cgroup and persist them in its state, as
runc's update.go does. What is merged, applied and restored is
cgroups/update.py's."""
from __future__ import annotations

from ..errors import PyruncError


def update(root: str, cid: str, upd: dict, *, l3_cache_schema: str = "", mem_bw_schema: str = "") -> None:
    """Apply a resources update to a container and persist it in its state."""
    from .. import log
    from ..cgroups.update import merge_update, restore_set
    from ..spec.schema import RESOURCES, check
    from .ops import load
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
        from ..cgroups import manager_from_state
        cg = manager_from_state(st)
        from ..cgroups.resources import validate, is_v2
        validate(new, is_v2(cg.paths))  # the merged whole must still make sense (e.g. swap >= memory on v2)
        try:
            cg.set(apply)
        except PyruncError:
            restore = restore_set(linux.get("resources") or {}, apply)
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
