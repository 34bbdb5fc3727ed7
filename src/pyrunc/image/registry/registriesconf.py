"""What registries.conf says of one registry: `insecure` (HTTP and no TLS
verification unless --tls-verify says otherwise) and `blocked`, as
containers/image's sysregistriesv2 reads them: the user's
~/.config/containers/registries.conf if it exists, else
/etc/containers/registries.conf, then the .conf files of the
registries.conf.d directories in name order, a later [[registry]] with the
same prefix replacing an earlier one; the longest matching prefix wins.
Mirrors, search registries and short names are not read."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from ...errors import PyruncError

SYSTEM_CONF = "/etc/containers/registries.conf"
SYSTEM_DIR = "/etc/containers/registries.conf.d"
USER_CONF = "~/.config/containers/registries.conf"
USER_DIR = "~/.config/containers/registries.conf.d"


@dataclass(frozen=True)
class RegistryConf:
    prefix: str
    insecure: bool = False
    blocked: bool = False


def _location(text: str) -> str:
    trimmed = text.rstrip("/")
    if trimmed.startswith(("http://", "https://")):
        raise PyruncError(f"invalid location '{text}': URI schemes are not supported")
    return trimmed


def _load(path: str) -> Optional[list[RegistryConf]]:
    import tomllib
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        return None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else str(e)
        raise PyruncError(f"loading registries configuration {path}: {why}") from None
    out: list[RegistryConf] = []
    v1 = doc.get("registries")
    if isinstance(v1, dict):   # version 1: [registries.insecure] / [registries.block]
        for key, attr in (("block", "blocked"), ("insecure", "insecure")):
            section = v1.get(key)
            for loc in (section or {}).get("registries", []) if isinstance(section, dict) else []:
                if isinstance(loc, str):
                    out.append(RegistryConf(_location(loc), **{attr: True}))
    for reg in doc.get("registry", []) if isinstance(doc.get("registry"), list) else []:
        if not isinstance(reg, dict):
            continue
        location = _location(str(reg.get("location", "")))
        prefix = _location(str(reg.get("prefix", ""))) or location
        if not prefix:
            raise PyruncError(f"loading registries configuration {path}: invalid condition: "
                              "both location and prefix are unset")
        out.append(RegistryConf(prefix, bool(reg.get("insecure", False)), bool(reg.get("blocked", False))))
    return out


def _conf_dir_files(d: str) -> list[str]:
    try:
        return [os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith(".conf")]
    except OSError:
        return []


def config_files(home: Optional[str] = None) -> list[str]:
    """The files read, in order (newConfigWrapper)."""
    home = home if home is not None else os.path.expanduser("~")
    user_conf = os.path.join(home, USER_CONF[2:])
    user_dir = os.path.join(home, USER_DIR[2:])
    if os.path.exists(user_conf):
        return [user_conf] + _conf_dir_files(user_dir)
    return [SYSTEM_CONF] + _conf_dir_files(SYSTEM_DIR) + _conf_dir_files(user_dir)


def _matches(ref: str, prefix: str) -> bool:
    if prefix.startswith("*."):
        i = ref.find(prefix[1:])
        if i == -1 or "/" in ref[:i]:
            return False
        end = i + len(prefix) - 1
        return end == len(ref) or ref[end] in ":/@"
    if len(ref) == len(prefix):
        return ref == prefix
    return len(ref) > len(prefix) and ref.startswith(prefix) and ref[len(prefix)] in ":/@"


def find(ref: str, files: Optional[list[str]] = None) -> Optional[RegistryConf]:
    """The configuration of `ref` (HOST[:PORT]/PATH), or None."""
    merged: dict[str, RegistryConf] = {}
    for path in config_files() if files is None else files:
        for reg in _load(path) or ():
            merged[reg.prefix] = reg
    best: Optional[RegistryConf] = None
    for reg in merged.values():
        if _matches(ref, reg.prefix) and (best is None or len(reg.prefix) > len(best.prefix)):
            best = reg
    return best
