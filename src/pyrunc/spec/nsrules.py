"""runc's semantic rules for time and user namespaces (libcontainer's
validator and specconv), checked before anything exists.

Only called when the config has a time namespace, time offsets or a user
namespace given by path: the common create path never imports this module.
"""
from __future__ import annotations

import os

from ..errors import ConfigError


def validate(linux: dict, nss: dict[str, str]) -> None:
    if "time" in nss:
        if not os.path.exists("/proc/self/timens_offsets"):
            raise ConfigError("time namespaces aren't enabled in the kernel", _ns_field(linux, "time"))
        if nss["time"] and linux.get("timeOffsets") is not None:
            raise ConfigError("time namespace enabled, but both namespace path and time offsets "
                              "specified -- you may only provide one", "linux.timeOffsets")
    elif linux.get("timeOffsets") is not None:
        raise ConfigError("time namespace offsets specified, but time namespace isn't enabled in the config",
                          "linux.timeOffsets")
    if nss.get("user"):
        _joined_userns(linux, nss["user"])


def _joined_userns(linux: dict, path: str) -> None:
    """The maps of the user namespace to join stand in for the config's, as
    in runc (the fifo's owner and the state use them). Maps in the config as
    well must be the same (containerd and CRI-O give both), else it is an
    error; the same maps only earn a warning, as runc gives."""
    from ..linux.usermaps import read_userns_maps
    try:
        uid_map, gid_map = read_userns_maps(path)
    except OSError as e:
        raise ConfigError(f"failed to cache mappings for userns: {path}: {e.strerror}",
                          _ns_field(linux, "user") + ".path") from e
    given = ("uidMappings" in linux and linux["uidMappings"] is not None
             or "gidMappings" in linux and linux["gidMappings"] is not None)
    if given:
        if not (_same(uid_map, linux.get("uidMappings")) and _same(gid_map, linux.get("gidMappings"))):
            raise ConfigError("user namespaces enabled, but both namespace path and non-matching mapping "
                              "specified -- you may only provide one",
                              "linux.uidMappings" if not _same(uid_map, linux.get("uidMappings"))
                              else "linux.gidMappings")
        from .. import log
        log.warn("config.json has both a userns path to join and a matching userns mapping specified -- "
                 "you may only provide one")
    linux["uidMappings"] = uid_map
    linux["gidMappings"] = gid_map


def _same(a: list[dict], b: object) -> bool:
    if not isinstance(b, list) or len(a) != len(b):
        return False
    return all(isinstance(y, dict) and all(x[k] == y.get(k) for k in ("containerID", "hostID", "size"))
               for x, y in zip(a, b))


def _ns_field(linux: dict, t: str) -> str:
    """The field path of the namespace of type `t` ("linux.namespaces[3]")."""
    i = next((i for i, n in enumerate(linux.get("namespaces") or []) if n.get("type") == t), None)
    return "linux.namespaces" if i is None else f"linux.namespaces[{i}]"
