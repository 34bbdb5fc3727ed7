"""pyrunc update: change the resource limits of a running container."""
from __future__ import annotations

FLAGS = {
    "resources": ("str", ""),
    "blkio-weight": ("str", ""),
    "cpu-period": ("str", ""),
    "cpu-quota": ("str", ""),
    "cpu-burst": ("str", ""),
    "cpu-share": ("str", ""),
    "cpu-rt-period": ("str", ""),
    "cpu-rt-runtime": ("str", ""),
    "cpuset-cpus": ("str", ""),
    "cpuset-mems": ("str", ""),
    "kernel-memory": ("str", ""),
    "kernel-memory-tcp": ("str", ""),
    "memory": ("str", ""),
    "cpu-idle": ("str", ""),
    "memory-reservation": ("str", ""),
    "memory-swap": ("str", ""),
    "pids-limit": ("str", ""),
    "l3-cache-schema": ("str", ""),
    "mem-bw-schema": ("str", ""),
}
ALIASES = {"r": "resources"}
HELP = """USAGE:
   pyrunc update [command options] <container-id>

DESCRIPTION:
   The update command changes the resource limits of a container (created,
running or paused), in its cgroup and in its saved configuration.

EXAMPLE:
   # pyrunc update --memory 512m --pids-limit 100 mycontainer
   # echo '{"cpu": {"quota": 50000, "period": 100000}}' | pyrunc update -r - mycontainer

OPTIONS:
   --resources value, -r value  path to the file containing the resources to update or '-' to read from the standard input

The accepted format is as follow (unchanged values can be omitted):

{
  "memory": {
    "limit": 0,
    "reservation": 0,
    "swap": 0,
    "checkBeforeUpdate": true
  },
  "cpu": {
    "shares": 0,
    "quota": 0,
    "burst": 0,
    "period": 0,
    "realtimeRuntime": 0,
    "realtimePeriod": 0,
    "cpus": "",
    "mems": "",
    "idle": 0
  },
  "blockIO": {
    "weight": 0
  }
}

Note: if data is to be read from a file or the standard input, all
other options are ignored.

   --blkio-weight value        Specifies per cgroup weight, range is from 10 to 1000 (default: 0)
   --cpu-period value          CPU CFS period to be used for hardcapping (in usecs). 0 to use system default
   --cpu-quota value           CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period
   --cpu-burst value           CPU CFS hardcap burst limit (in usecs). Allowed accumulated cpu time additionally for burst a given period
   --cpu-share value           CPU shares (relative weight vs. other containers)
   --cpu-rt-period value       CPU realtime period to be used for hardcapping (in usecs). 0 to use system default
   --cpu-rt-runtime value      CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period
   --cpuset-cpus value         CPU(s) to use
   --cpuset-mems value         Memory node(s) to use
   --memory value              Memory limit (in bytes; units such as 100m, 1g accepted)
   --cpu-idle value            set cgroup SCHED_IDLE or not, 0: default behavior, 1: SCHED_IDLE
   --memory-reservation value  Memory reservation or soft_limit (in bytes)
   --memory-swap value         Total memory usage (memory + swap); set '-1' to enable unlimited swap
   --pids-limit value          Maximum number of pids allowed in the container (default: 0)
   --l3-cache-schema value     The string of Intel RDT/CAT L3 cache schema
   --mem-bw-schema value       The string of Intel RDT/MBA memory bandwidth schema
"""

_MAX_U64 = (1 << 64) - 1
_I64 = 1 << 63


def ram_in_bytes(size: str) -> int:
    """go-units RAMInBytes: "100m", "1.5g", "2 GiB", "512" (binary multiples,
    case-insensitive, optional b / ib suffix)."""
    from ..errors import PyruncError
    sep = max(size.rfind(c) for c in "0123456789. ")
    if sep == -1:
        raise PyruncError(f"invalid size: '{size}'")
    if size[sep] != " ":
        num, sfx = size[:sep + 1], size[sep + 1:]
    else:
        num, sfx = size[:sep], size[sep + 1:]
    value = _parse_float(num)
    if value < 0:
        raise PyruncError(f"invalid size: '{size}'")
    if sfx:
        low = sfx.lower()
        mul = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}.get(low[0])
        ok = len(low) <= 3 and (low == "b" or (mul is not None and (len(low) == 1 or (len(low) == 2 and low[1] == "b")
                                                                     or (len(low) == 3 and low[1:] == "ib"))))
        if not ok:
            raise PyruncError(f"invalid suffix: '{low if len(sfx) <= 3 else sfx}'")
        if low != "b" and mul is not None:  # ok: not "b" means a known multiplier
            value *= mul
    if value >= _I64:
        raise PyruncError(f"invalid size: '{size}': value out of range")
    return int(value)


def _parse_float(s: str) -> float:
    """strconv.ParseFloat's decimal syntax (no Python-only forms such as 1_0)."""
    from ..errors import PyruncError
    t = s[1:] if s[:1] in "+-" else s
    mant, _, exp = t.lower().partition("e")
    intpart, dot, frac = mant.partition(".")
    good = (intpart.isdigit() or (intpart == "" and frac.isdigit())) and (frac == "" or frac.isdigit()) \
        and (not exp or (exp.lstrip("+-").isdigit() and exp[:1] in "+-0123456789"))
    if not good or not t.isascii():
        raise PyruncError(f'strconv.ParseFloat: parsing "{s}": invalid syntax')
    return float(s)


def _uint(flag: str, v: str) -> int:
    from ..errors import PyruncError
    if v.isdigit() and v.isascii():
        n = int(v)
        if n <= _MAX_U64:
            return n
        raise PyruncError(f'invalid value for {flag}: strconv.ParseUint: parsing "{v}": value out of range')
    raise PyruncError(f'invalid value for {flag}: strconv.ParseUint: parsing "{v}": invalid syntax')


def _int(flag: str, v: str) -> int:
    from ..errors import PyruncError
    body = v[1:] if v[:1] in "+-" else v
    if body.isdigit() and body.isascii():
        n = int(v)
        if -_I64 <= n < _I64:
            return n
        raise PyruncError(f'invalid value for {flag}: strconv.ParseInt: parsing "{v}": value out of range')
    raise PyruncError(f'invalid value for {flag}: strconv.ParseInt: parsing "{v}": invalid syntax')


def _int_flag(flag: str, v: str) -> int:
    """urfave's IntFlag (strconv.ParseInt(v, 0, 64))."""
    from ..errors import PyruncError
    try:
        n = int(v, 0)
        if -_I64 <= n < _I64:
            return n
    except ValueError:
        pass
    raise PyruncError(f'invalid value "{v}" for flag -{flag}: parse error')


def resources_from_flags(opts: dict) -> dict:
    """The linux.resources fragment the flags ask for (runc's update.go)."""
    from ..errors import PyruncError
    r: dict = {"memory": {}, "cpu": {}, "blockIO": {}, "pids": {}}
    if opts["blkio-weight"]:
        w = _int_flag("blkio-weight", opts["blkio-weight"])
        if w:
            if not 0 < w <= 0xFFFF:
                raise PyruncError(f"invalid value for blkio-weight: {w} (range is 10 to 1000)")
            r["blockIO"]["weight"] = w
    if opts["cpuset-cpus"]:
        r["cpu"]["cpus"] = opts["cpuset-cpus"]
    if opts["cpuset-mems"]:
        r["cpu"]["mems"] = opts["cpuset-mems"]
    if opts["cpu-idle"]:
        r["cpu"]["idle"] = _int("cpu-idle", opts["cpu-idle"])
    for flag, key in (("cpu-burst", "burst"), ("cpu-period", "period"), ("cpu-rt-period", "realtimePeriod"),
                      ("cpu-share", "shares")):
        if opts[flag]:
            r["cpu"][key] = _uint(flag, opts[flag])
    for flag, key in (("cpu-quota", "quota"), ("cpu-rt-runtime", "realtimeRuntime")):
        if opts[flag]:
            r["cpu"][key] = _int(flag, opts[flag])
    for flag, key in (("memory", "limit"), ("memory-swap", "swap"), ("kernel-memory", "kernel"),
                      ("kernel-memory-tcp", "kernelTCP"), ("memory-reservation", "reservation")):
        v = opts[flag]
        if v:
            if v == "-1":
                r["memory"][key] = -1
            else:
                try:
                    r["memory"][key] = ram_in_bytes(v)
                except PyruncError as e:
                    raise PyruncError(f"invalid value for {flag}: {e}") from None
    if opts["pids-limit"] != "":
        r["pids"]["limit"] = _int_flag("pids-limit", opts["pids-limit"])
    return r


def read_resources(src: str) -> dict:
    import sys
    from ..errors import ConfigError
    from ..fastjson import loads
    try:
        if src == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(src, "rb") as f:
                data = f.read()
    except OSError as e:
        raise ConfigError(f"open {src}: {(e.strerror or '').lower()}") from e
    try:
        r = loads(data)
    except ValueError as e:
        raise ConfigError(f"invalid resources JSON: {e}") from e
    if not isinstance(r, dict):
        raise ConfigError("invalid resources JSON: must be an object")
    return r  # field names are matched as Go does by the schema walk (spec/schema.py)


def run(ctx, opts: dict, args: list[str]) -> int:
    from .main import check_args
    check_args("update", args, 1)
    import os
    from ..errors import ContainerNotFound
    from ..container.state import StateDir
    if not os.path.isdir(StateDir(ctx.root, args[0]).path):  # runc: getContainer first
        raise ContainerNotFound(args[0])
    if opts["resources"]:
        upd = read_resources(opts["resources"])
    else:
        upd = resources_from_flags(opts)
    from ..container.update import update
    update(ctx.root, args[0], upd, l3_cache_schema=opts["l3-cache-schema"], mem_bw_schema=opts["mem-bw-schema"])
    return 0
