"""linux.resources into cgroup files, with runc's v1 (libcontainer fs) and v2
(fs2) mappings.

    apply_resources(paths, resources, linux_devices=None, skip_devices=False)

`paths` is the Manager's map (v1 mount-option keys such as "cpu,cpuacct" or
"memory", and "" for the unified hierarchy). A host is driven as v2 only when
"" is the only hierarchy (runc uses its v1 driver on a hybrid host, and so do
we). Values follow runc's zero semantics: 0 (or absent) means "leave as is".

Everything that can be checked without the cgroup files is checked first
(validate), so a bad value fails before any file is written. A setting the
host cannot honour is one clear error where runc fails too (a controller
that is not mounted, "unified" on v1, swappiness above 100, ...); where runc
silently ignores a setting (kernel memory, and on v2 the v1-only knobs) we
warn instead of staying silent.

Only what the config uses is touched: no controller file is read or written
for a resource that is not set.
"""
from __future__ import annotations

import errno
import os

from ..errors import ConfigError, PyruncError
from . import is_rootless

# resource -> v1 controller that carries it (fs.subsystems names)
_V1_CTRL = {"memory": "memory", "cpu": "cpu", "cpuset": "cpuset", "pids": "pids", "blockIO": "blkio",
            "hugepageLimits": "hugetlb", "classID": "net_cls", "priorities": "net_prio",
            "rdma": "rdma", "devices": "devices"}

MAX_UINT64 = (1 << 64) - 1


# -- file access (the unit tests wrap _write_file to record every write) -----------

def _strerror(e: OSError) -> str:
    s = e.strerror or os.strerror(e.errno or 0)
    return s[:1].lower() + s[1:]


def _write_file(dirpath: str, name: str, data: str) -> None:
    """Write one value, as runc's cgroups.WriteFile (no O_TRUNC, no O_CREAT)."""
    path = os.path.join(dirpath, name)
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def write(dirpath: str, name: str, data: str) -> None:
    """_write_file with runc's error text: failed to write "v": write <path>: <errno>."""
    try:
        _write_file(dirpath, name, data)
    except FileNotFoundError:
        raise CgroupFileError(errno.ENOENT, f"cannot set {name}: {os.path.join(dirpath, name)} does not exist "
                              "(not supported by this kernel or controller)") from None
    except OSError as e:
        raise CgroupFileError(e.errno, f'failed to write "{data}": write {os.path.join(dirpath, name)}: '
                              f"{_strerror(e)}") from None


def read(dirpath: str, name: str) -> str:
    try:
        with open(os.path.join(dirpath, name)) as f:
            return f.read().strip()
    except OSError as e:
        raise CgroupFileError(e.errno, f"{os.path.join(dirpath, name)}: {_strerror(e)}") from None


def read_uint(dirpath: str, name: str) -> int:
    s = read(dirpath, name)
    if s == "max":
        return MAX_UINT64
    try:
        v = int(s)
    except ValueError:
        raise PyruncError(f"unable to parse {os.path.join(dirpath, name)}: {s!r}") from None
    return 0 if v < 0 else v


class CgroupFileError(PyruncError):
    """A cgroup file could not be written; errno kept for runc's retry rules."""

    def __init__(self, err: int | None, msg: str) -> None:
        super().__init__(msg)
        self.errno = err


# -- helpers ----------------------------------------------------------------------

def is_v2(paths: dict[str, str]) -> bool:
    return bool(paths) and set(paths) == {""}


def controller_dir(paths: dict[str, str], ctrl: str) -> str | None:
    """The directory of a v1 controller (keys may be "cpu,cpuacct")."""
    p = paths.get(ctrl)
    if p is not None:
        return p
    for key, path in paths.items():
        if key and ctrl in key.split(","):
            return path
    return None


def _v1_dir(paths: dict[str, str], ctrl: str) -> str:
    d = controller_dir(paths, ctrl)
    if not d:
        raise PyruncError(f"cannot set {ctrl} limit: no {ctrl} controller among this host's cgroup v1 "
                          "hierarchies (container could not join or create cgroup)")
    return d


def _int(v: object, what: str, lo: int = -(1 << 63), hi: int = MAX_UINT64) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"invalid config: linux.resources.{what} must be an integer, not {v!r}",
                          f"linux.resources.{what}")
    if not lo <= v <= hi:
        raise ConfigError(f"invalid config: linux.resources.{what} {v} is out of range", f"linux.resources.{what}")
    return v


def _get(d: object, key: str, what: str, lo: int = -(1 << 63), hi: int = MAX_UINT64) -> int:
    """An integer field (0 when absent or null, runc's "unset")."""
    if not isinstance(d, dict):
        return 0
    v = d.get(key)
    return 0 if v is None else _int(v, f"{what}.{key}", lo, hi)


def _obj(r: dict, key: str) -> dict:
    v = r.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ConfigError(f"invalid config: linux.resources.{key} must be an object", f"linux.resources.{key}")
    return v


def _list(d: dict, key: str, what: str) -> list:
    v = d.get(key)
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise ConfigError(f"invalid config: linux.resources.{what}.{key} must be a list of objects",
                          f"linux.resources.{what}.{key}")
    return v


U64 = (0, MAX_UINT64)
U16 = (0, 0xFFFF)
U32 = (0, 0xFFFFFFFF)


def convert_cpu_shares_to_weight(shares: int) -> int:
    """runc's ConvertCPUSharesToCgroupV2Value (the quadratic fit through
    2 -> 1, 1024 -> 100, 262144 -> 10000; runc >= 1.3, crun >= 1.23)."""
    if shares == 0:
        return 0
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    import math
    lg = math.log2(shares)
    exponent = (lg * lg + 125 * lg) / 612.0 - 7.0 / 34.0
    return int(math.ceil(10 ** exponent))


def convert_memory_swap_to_v2(swap: int, memory: int) -> int:
    """runc's ConvertMemorySwapToCgroupV2Value: memory.swap.max from the
    spec's memory+swap total."""
    if memory == -1 and swap == 0:
        return -1
    if swap in (-1, 0):
        return swap
    if memory == -1:
        return swap
    if memory == 0:
        raise ConfigError("unable to set swap limit without memory limit", "linux.resources.memory.swap")
    if memory < 0:
        raise ConfigError(f"invalid memory value: {memory}", "linux.resources.memory.limit")
    if swap < memory:
        raise ConfigError("memory+swap limit should be >= memory limit", "linux.resources.memory.swap")
    return swap - memory


def convert_blkio_to_io_weight(w: int) -> int:
    """runc's ConvertBlkIOToIOWeightValue: [10, 1000] -> [1, 10000]."""
    return 0 if w == 0 else 1 + (w - 10) * 9999 // 990


def _num_to_str(v: int) -> str:
    """fs2 numToStr: 0 -> unset, -1 -> "max"."""
    return "" if v == 0 else "max" if v == -1 else str(v)


# -- validation (no side effects) -----------------------------------------------------

def validate(r: dict, v2: bool, warn=None) -> list[str]:
    """Check every value pyrunc will write; returns the warnings (settings
    runc ignores) and raises ConfigError on the first invalid one."""
    warnings: list[str] = []
    if not isinstance(r, dict):
        raise ConfigError("invalid config: linux.resources must be an object", "linux.resources")
    mem = _obj(r, "memory")
    limit = _get(mem, "limit", "memory")
    swap = _get(mem, "swap", "memory")
    _get(mem, "reservation", "memory")
    if mem.get("kernel") is not None or mem.get("kernelTCP") is not None:
        warnings.append("Kernel memory settings are ignored and will be removed")
    sw = mem.get("swappiness")
    if sw is not None:
        sw = _int(sw, "memory.swappiness")
        if sw not in (-1, MAX_UINT64) and not 0 <= sw <= 100:
            raise ConfigError(f"invalid memory swappiness value: {sw} (valid range is 0-100)",
                              "linux.resources.memory.swappiness")
        if v2 and sw not in (-1, MAX_UINT64):
            warnings.append("memory.swappiness is not supported on cgroup v2: ignored (as runc)")
    if mem.get("disableOOMKiller") and v2:
        warnings.append("memory.disableOOMKiller is not supported on cgroup v2: ignored (as runc)")
    if v2:
        convert_memory_swap_to_v2(swap, limit)
    cpu = _obj(r, "cpu")
    for k in ("shares", "period", "realtimePeriod", "burst"):
        _get(cpu, k, "cpu", *U64)
    for k in ("quota", "realtimeRuntime", "idle"):
        _get(cpu, k, "cpu")
    for k in ("cpus", "mems"):
        if cpu.get(k) is not None and not isinstance(cpu[k], str):
            raise ConfigError(f"invalid config: linux.resources.cpu.{k} must be a string", f"linux.resources.cpu.{k}")
    if v2 and (_get(cpu, "realtimePeriod", "cpu") or _get(cpu, "realtimeRuntime", "cpu")):
        warnings.append("cpu.realtimePeriod and cpu.realtimeRuntime are not supported on cgroup v2: ignored (as runc)")
    pids = _obj(r, "pids")
    if pids.get("limit") is not None:
        _int(pids["limit"], "pids.limit")
    bio = _obj(r, "blockIO")
    _get(bio, "weight", "blockIO", *U16)
    if _get(bio, "leafWeight", "blockIO", *U16) and v2:
        warnings.append("blockIO.leafWeight is not supported on cgroup v2: ignored (as runc)")
    for wd in _list(bio, "weightDevice", "blockIO"):
        _get(wd, "major", "blockIO.weightDevice")
        _get(wd, "minor", "blockIO.weightDevice")
        _get(wd, "weight", "blockIO.weightDevice", *U16)
        if _get(wd, "leafWeight", "blockIO.weightDevice", *U16) and v2:
            warnings.append("blockIO.weightDevice[].leafWeight is not supported on cgroup v2: ignored (as runc)")
    for k in ("throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice"):
        for td in _list(bio, k, "blockIO"):
            _get(td, "major", f"blockIO.{k}")
            _get(td, "minor", f"blockIO.{k}")
            _get(td, "rate", f"blockIO.{k}", *U64)
    hp = r.get("hugepageLimits")
    if hp is not None:
        if not isinstance(hp, list):
            raise ConfigError("invalid config: linux.resources.hugepageLimits must be a list",
                              "linux.resources.hugepageLimits")
        for i, h in enumerate(hp):
            if not isinstance(h, dict) or not isinstance(h.get("pageSize"), str) or not h["pageSize"] \
                    or "/" in h["pageSize"]:
                raise ConfigError("invalid config: linux.resources.hugepageLimits[].pageSize must be a page size "
                                  "such as \"2MB\"", f"linux.resources.hugepageLimits[{i}].pageSize")
            _get(h, "limit", "hugepageLimits", *U64)
    net = _obj(r, "network")
    if net:
        _get(net, "classID", "network", *U32)
        for i, p in enumerate(_list(net, "priorities", "network")):
            if not isinstance(p.get("name"), str) or not p["name"] or any(c in p["name"] for c in " \n/"):
                raise ConfigError("invalid config: linux.resources.network.priorities[].name must be an interface name",
                                  f"linux.resources.network.priorities[{i}].name")
            _get(p, "priority", "network.priorities", *U32)
        if v2 and (net.get("classID") or net.get("priorities")):
            warnings.append("linux.resources.network (net_cls/net_prio) is not supported on cgroup v2: ignored (as runc)")
    rdma = _obj(r, "rdma")
    for dev, lim in rdma.items():
        if not dev or any(c in dev for c in " \n"):
            raise ConfigError(f"invalid config: linux.resources.rdma: {dev!r} is not a device name",
                              "linux.resources.rdma")
        if not isinstance(lim, dict):
            raise ConfigError(f"invalid config: linux.resources.rdma[{dev!r}] must be an object",
                              _map_field("rdma", dev))
        for k in ("hcaHandles", "hcaObjects"):
            if lim.get(k) is not None:
                _int(lim[k], f"rdma.{dev}.{k}", *U32)
    for i, d in enumerate(r.get("devices") or []):
        access = d.get("access") if isinstance(d, dict) else None
        if isinstance(access, str) and any(c not in "rwm" for c in access):
            warnings.append(f'linux.resources.devices[{i}]: access "{access}" has letters other than r, w, m: '
                            "they are ignored (as runc)")
    uni = r.get("unified")
    if uni:
        if not v2:
            raise ConfigError("invalid configuration: cannot use unified on cgroup v1", "linux.resources.unified")
        if not isinstance(uni, dict) or not all(isinstance(v, str) for v in uni.values()):
            raise ConfigError("invalid config: linux.resources.unified must map file names to strings",
                              "linux.resources.unified")
        for k in uni:
            if "/" in k:
                raise ConfigError(f'unified resource "{k}" must be a file name (no slashes)',
                                  _map_field("unified", k))
    if warn is not None:
        for w in warnings:
            warn(w)
    return warnings


def _map_field(field: str, key: str) -> str:
    from ..fastjson import key_path
    return key_path(f"linux.resources.{field}", key)


def check(paths: dict[str, str], r: dict, linux_devices: list | None = None) -> None:
    """Everything apply_resources checks before writing, without writing:
    for the create path to call before it forks (a bad value is then one
    error with nothing to undo)."""
    validate(r if r is not None else {}, is_v2(paths))
    from .devices import Emulator, spec_rules
    Emulator.from_rules(spec_rules(r or {}, linux_devices))


# -- the entry point ----------------------------------------------------------------

def plan_devices(paths: dict[str, str], r: dict, linux_devices: list | None) -> tuple:
    """What apply_resources computes for the device rules before it writes:
    (the rules, on v1 devices.plan_v1's transition, on v2 the device
    program). A create makes it while the init mounts, so that the write
    the init waits for is only writes."""
    from .devices import plan_v1, spec_rules
    rules = spec_rules(r or {}, linux_devices)
    if is_v2(paths):
        from .devices import device_filter
        from . import ebpf  # noqa: F401 - ctypes' import (2 ms), off the init's wait too
        return rules, device_filter(rules)
    ddir = controller_dir(paths, "devices")
    return rules, (plan_v1(ddir, rules) if ddir else None)


def apply_resources(paths: dict[str, str], r: dict, linux_devices: list | None = None,
                    skip_devices: bool = False, warn=None, devices_plan: tuple | None = None) -> None:
    """Write linux.resources into the container's cgroup (see the module doc).
    `devices_plan`: plan_devices' for the same arguments."""
    if r is None:
        r = {}
    v2 = is_v2(paths)
    if warn is None:
        from .. import log
        warn = log.warn
    validate(r, v2, warn)
    rules, planned = None, None
    if not skip_devices:
        from .devices import spec_rules
        rules, planned = devices_plan or (spec_rules(r, linux_devices), None)
    if v2:
        _apply_v2(paths[""], r, rules, planned)
    else:
        _apply_v1(paths, r, rules, planned)


# -- cgroup v1 (runc's fs driver, subsystem order) -----------------------------------------

def _apply_v1(paths: dict[str, str], r: dict, rules: list | None, plan: tuple | None = None) -> None:
    cpu = r.get("cpu") or {}
    if cpu.get("cpus") or cpu.get("mems"):
        d = _v1_dir(paths, "cpuset")
        if cpu.get("cpus"):
            write(d, "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            write(d, "cpuset.mems", cpu["mems"])
    if rules is not None:
        ddir = controller_dir(paths, "devices")
        if ddir:
            from .devices import set_v1
            try:
                set_v1(ddir, rules, write, plan)
            except CgroupFileError as e:
                # as runc: a rootless container's device rules are best effort
                if not is_rootless() or e.errno not in (errno.EPERM, errno.EACCES, errno.EROFS):
                    raise
        elif not is_rootless():  # rootless without a devices cgroup: best effort, as runc
            raise PyruncError("the devices cgroup controller is not mounted on this host: "
                              "cannot restrict the container's device access")
    mem = r.get("memory") or {}
    if mem:
        _v1_memory(paths, mem)
    if cpu:
        _v1_cpu(paths, cpu)
    pids = r.get("pids") or {}
    if pids.get("limit") is not None:
        write(_v1_dir(paths, "pids"), "pids.max", _pids_value(pids["limit"]))
    bio = r.get("blockIO") or {}
    if bio:
        _v1_blkio(paths, bio)
    hp = r.get("hugepageLimits") or []
    if hp:
        _hugetlb(_v1_dir(paths, "hugetlb"), hp, ".limit_in_bytes")
    net = r.get("network") or {}
    if net.get("classID"):
        write(_v1_dir(paths, "net_cls"), "net_cls.classid", str(net["classID"]))
    for p in net.get("priorities") or []:
        write(_v1_dir(paths, "net_prio"), "net_prio.ifpriomap", f"{p['name']} {p.get('priority') or 0}")
    rdma = r.get("rdma") or {}
    if rdma:
        _rdma(_v1_dir(paths, "rdma"), rdma)


def _pids_value(limit: int) -> str:
    # runc >= 1.2 (runtime-spec 1.2.1): 0 is "1" as systemd's TasksMax, < 0 is no limit
    return str(limit) if limit > 0 else "1" if limit == 0 else "max"


def _v1_memory(paths: dict[str, str], mem: dict) -> None:
    limit = mem.get("limit") or 0
    swap = mem.get("swap") or 0
    resv = mem.get("reservation") or 0
    sw = mem.get("swappiness")
    touch = limit or swap or resv or mem.get("disableOOMKiller") or (sw is not None and sw not in (-1, MAX_UINT64))
    if not touch:
        return
    d = _v1_dir(paths, "memory")
    memsw = "memory.memsw.limit_in_bytes"
    if limit == -1 and swap == 0 and os.path.exists(os.path.join(d, memsw)):
        swap = -1
    done = False
    if limit and swap:
        # the kernel wants memory <= memory+swap at every step: order the writes
        cur = read_uint(d, "memory.limit_in_bytes")
        if swap == -1 or cur < (swap & MAX_UINT64):
            write(d, memsw, str(swap))
            _v1_set_memory(d, limit)
            done = True
    if not done:
        _v1_set_memory(d, limit)
        if swap:
            write(d, memsw, str(swap))
    if resv:
        write(d, "memory.soft_limit_in_bytes", str(resv))
    if mem.get("disableOOMKiller"):
        write(d, "memory.oom_control", "1")
    if sw is not None and sw not in (-1, MAX_UINT64):
        write(d, "memory.swappiness", str(sw))


def _v1_set_memory(d: str, limit: int) -> None:
    if not limit:
        return
    try:
        write(d, "memory.limit_in_bytes", str(limit))
    except CgroupFileError as e:
        if e.errno != errno.EBUSY:
            raise
        usage = read_uint(d, "memory.usage_in_bytes")
        peak = read_uint(d, "memory.max_usage_in_bytes")
        raise PyruncError(f"unable to set memory limit to {limit} (current usage: {usage}, peak usage: {peak})") from None


def _v1_cpu(paths: dict[str, str], cpu: dict) -> None:
    shares = cpu.get("shares") or 0
    quota = cpu.get("quota") or 0
    period = cpu.get("period") or 0
    burst = cpu.get("burst")
    idle = cpu.get("idle")
    rt_period = cpu.get("realtimePeriod") or 0
    rt_runtime = cpu.get("realtimeRuntime") or 0
    if not (shares or quota or period or burst is not None or idle is not None or rt_period or rt_runtime):
        return
    d = _v1_dir(paths, "cpu")
    if shares:
        write(d, "cpu.shares", str(shares))
        got = read_uint(d, "cpu.shares")
        if shares > got:
            raise PyruncError(f"the maximum allowed cpu-shares is {got}")
        if shares < got:
            raise PyruncError(f"the minimum allowed cpu-shares is {got}")
    retry_period = ""
    if period:
        try:
            write(d, "cpu.cfs_period_us", str(period))
        except CgroupFileError as e:
            # a smaller period can exceed the parent's quota until the quota is set
            if e.errno != errno.EINVAL or not quota:
                raise
            retry_period = str(period)
    retry_burst = ""
    if burst is not None:
        try:
            write(d, "cpu.cfs_burst_us", str(burst))
        except CgroupFileError as e:
            if e.errno == errno.ENOENT:
                pass  # no burst knob in this kernel: runc ignores it
            elif e.errno != errno.EINVAL or not quota:
                raise
            else:
                retry_burst = str(burst)
    if quota:
        write(d, "cpu.cfs_quota_us", str(quota))
        if retry_period:
            write(d, "cpu.cfs_period_us", retry_period)
        if retry_burst:
            write(d, "cpu.cfs_burst_us", retry_burst)
    if idle is not None:
        write(d, "cpu.idle", str(idle))
    _v1_rt(d, rt_period, rt_runtime)


def _v1_rt(d: str, rt_period: int, rt_runtime: int) -> None:
    retry = ""
    if rt_period:
        try:
            write(d, "cpu.rt_period_us", str(rt_period))
        except CgroupFileError as e:
            if e.errno != errno.EINVAL or not rt_runtime:
                raise
            retry = str(rt_period)
    if rt_runtime:
        write(d, "cpu.rt_runtime_us", str(rt_runtime))
        if retry:
            write(d, "cpu.rt_period_us", retry)


def _dev(d: dict) -> str:
    return f"{d.get('major') or 0}:{d.get('minor') or 0}"


_THROTTLE = (("throttleReadBpsDevice", "blkio.throttle.read_bps_device", "rbps"),
             ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device", "wbps"),
             ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device", "riops"),
             ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device", "wiops"))


def _v1_blkio(paths: dict[str, str], bio: dict) -> None:
    weight = bio.get("weight") or 0
    leaf = bio.get("leafWeight") or 0
    wds = bio.get("weightDevice") or []
    if not (weight or leaf or any((w.get("weight") or w.get("leafWeight")) for w in wds)
            or any(bio.get(k) for k, _, _ in _THROTTLE)):
        return
    d = _v1_dir(paths, "blkio")
    if os.path.exists(os.path.join(d, "blkio.weight")):
        wfile, wdfile = "blkio.weight", "blkio.weight_device"
    else:  # CFQ is gone from modern kernels: BFQ's files
        wfile, wdfile = "blkio.bfq.weight", "blkio.bfq.weight_device"
    if weight:
        write(d, wfile, str(weight))
    if leaf:
        write(d, "blkio.leaf_weight", str(leaf))
    for wd in wds:
        if wd.get("weight"):
            write(d, wdfile, f"{_dev(wd)} {wd['weight']}")
        if wd.get("leafWeight"):
            write(d, "blkio.leaf_weight_device", f"{_dev(wd)} {wd['leafWeight']}")
    for key, fname, _ in _THROTTLE:
        for td in bio.get(key) or []:
            write(d, fname, f"{_dev(td)} {td.get('rate') or 0}")


def _hugetlb(d: str, limits: list, suffix: str) -> None:
    skip_rsvd = False
    for h in limits:
        prefix = "hugetlb." + h["pageSize"]
        val = str(h.get("limit") or 0)
        try:
            write(d, prefix + suffix, val)
        except CgroupFileError as e:
            if e.errno == errno.ENOENT:
                raise PyruncError(f"cannot set hugetlb limit: page size {h['pageSize']} is not supported "
                                  f"({os.path.join(d, prefix + suffix)} does not exist)") from None
            raise
        if skip_rsvd:
            continue
        try:
            write(d, prefix + ".rsvd" + suffix, val)
        except CgroupFileError as e:
            if e.errno != errno.ENOENT:
                raise
            skip_rsvd = True


def _rdma(d: str, rdma: dict) -> None:
    for dev, lim in rdma.items():
        s = dev
        if lim.get("hcaHandles") is not None:
            s += f" hca_handle={lim['hcaHandles']}"
        if lim.get("hcaObjects") is not None:
            s += f" hca_object={lim['hcaObjects']}"
        write(d, "rdma.max", s)


# -- cgroup v2 (runc's fs2 driver, in its order) ---------------------------------------------

def _v2_needed(r: dict) -> list[str]:
    """Controllers the resources need enabled in the cgroup."""
    need = []
    if (r.get("pids") or {}).get("limit") is not None:
        need.append("pids")
    mem = r.get("memory") or {}
    if mem.get("limit") or mem.get("swap") or mem.get("reservation"):
        need.append("memory")
    bio = r.get("blockIO") or {}
    if bio.get("weight") or bio.get("weightDevice") or any(bio.get(k) for k, _, _ in _THROTTLE):
        need.append("io")
    cpu = r.get("cpu") or {}
    if cpu.get("shares") or cpu.get("quota") or cpu.get("period") or cpu.get("burst") is not None \
            or cpu.get("idle") is not None:
        need.append("cpu")
    if cpu.get("cpus") or cpu.get("mems"):
        need.append("cpuset")
    if r.get("hugepageLimits"):
        need.append("hugetlb")
    if r.get("rdma"):
        need.append("rdma")
    for k in r.get("unified") or {}:
        c = k.partition(".")[0]
        if c and c not in need and c != "cgroup":
            need.append(c)
    return need


def _read_words(path: str) -> set[str]:
    try:
        with open(path) as f:
            return set(f.read().split())
    except OSError:
        return set()


def enable_controllers(d: str, need: list[str], strict: bool = True) -> None:
    """Enable the controllers in every ancestor's cgroup.subtree_control, from
    the hierarchy root down (runc's fs2 CreateCgroupPath, for what is needed).
    The root cgroup is the first ancestor without a cgroup.type file; in a
    cgroup namespace it is the mount point, whose parent is no cgroup."""
    have = _read_words(os.path.join(d, "cgroup.controllers"))
    missing = [c for c in need if c not in have]
    if not missing:
        return
    chain = []
    p = os.path.dirname(d.rstrip("/"))
    while os.path.exists(os.path.join(p, "cgroup.controllers")):
        chain.append(p)
        if not os.path.exists(os.path.join(p, "cgroup.type")) or p in ("/", ""):
            break
        p = os.path.dirname(p)
    for anc in reversed(chain):
        avail = _read_words(os.path.join(anc, "cgroup.controllers"))
        enabled = _read_words(os.path.join(anc, "cgroup.subtree_control"))
        for c in missing:
            if c in enabled:
                continue
            if c not in avail:
                if not strict:
                    continue
                raise PyruncError(f"cannot set {c} limits: the {c} controller is not available "
                                  f"in the cgroup v2 hierarchy ({anc}/cgroup.controllers)")
            try:
                _write_file(anc, "cgroup.subtree_control", "+" + c)
            except OSError as e:
                raise PyruncError(f"cannot enable the {c} controller in {anc}/cgroup.subtree_control: "
                                  f"{_strerror(e)}") from None


def _apply_v2(d: str, r: dict, rules: list | None, program: tuple | None = None) -> None:
    need = _v2_needed(r)
    if need:
        uni_only = _unified_only(r)
        strict = [c for c in need if c not in uni_only]
        if strict:
            enable_controllers(d, strict)
        if uni_only:  # a missing one gets runc's "controller not available" below
            enable_controllers(d, uni_only, strict=False)
    pids = r.get("pids") or {}
    if pids.get("limit") is not None:
        write(d, "pids.max", _pids_value(pids["limit"]))
    mem = r.get("memory") or {}
    if mem:
        _v2_memory(d, mem)
    bio = r.get("blockIO") or {}
    if bio:
        _v2_io(d, bio)
    cpu = r.get("cpu") or {}
    if cpu:
        _v2_cpu(d, cpu)
    if rules is not None:
        from .devices import set_v2
        set_v2(d, rules, program)
    if cpu.get("cpus"):
        write(d, "cpuset.cpus", cpu["cpus"])
    if cpu.get("mems"):
        write(d, "cpuset.mems", cpu["mems"])
    hp = r.get("hugepageLimits") or []
    if hp:
        _hugetlb(d, hp, ".max")
    rdma = r.get("rdma") or {}
    if rdma:
        _rdma(d, rdma)
    uni = r.get("unified") or {}
    if uni:
        _v2_unified(d, uni)


def _unified_only(r: dict) -> list[str]:
    """Controllers only the unified map asks for (their absence is reported
    by _v2_unified with runc's message)."""
    uni = r.get("unified") or {}
    if not uni:
        return []
    other = set(_v2_needed({k: v for k, v in r.items() if k != "unified"}))
    return [c for c in _v2_needed({"unified": uni}) if c not in other]


def check_memory_usage(d: str, mem: dict) -> None:
    """fs2 CheckMemoryUsage: with checkBeforeUpdate, refuse a limit at or
    below the current usage (best effort: unreadable usage passes)."""
    if not mem.get("checkBeforeUpdate"):
        return
    limit, swap = mem.get("limit") or 0, mem.get("swap") or 0
    if limit <= 0 and swap <= 0:
        return
    try:
        usage = read_uint(d, "memory.current")
    except PyruncError:
        return
    if swap > 0 and swap <= usage:
        raise PyruncError(f"rejecting memory+swap limit {swap} <= usage {usage}")
    if limit > 0 and limit <= usage:
        raise PyruncError(f"rejecting memory limit {limit} <= usage {usage}")


def _v2_memory(d: str, mem: dict) -> None:
    limit = mem.get("limit") or 0
    swap = mem.get("swap") or 0
    resv = mem.get("reservation") or 0
    if not (limit or swap or resv):
        return
    check_memory_usage(d, mem)
    sv = convert_memory_swap_to_v2(swap, limit)
    s = _num_to_str(sv)
    if s == "" and sv == 0 and swap > 0:
        s = "0"  # memory and memory+swap equal: no swap
    if s:
        try:
            write(d, "memory.swap.max", s)
        except CgroupFileError as e:
            # without swap accounting, "max" and "0" are what the kernel does anyway
            if not (e.errno == errno.ENOENT and s in ("max", "0")):
                raise
    if _num_to_str(limit):
        write(d, "memory.max", _num_to_str(limit))
    if _num_to_str(resv):
        write(d, "memory.low", _num_to_str(resv))


def _v2_io(d: str, bio: dict) -> None:
    weight = bio.get("weight") or 0
    wds = bio.get("weightDevice") or []
    bfq = None
    if weight or wds:
        try:
            bfq = os.open(os.path.join(d, "io.bfq.weight"), os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            bfq = None
        except OSError as e:
            raise PyruncError(f"{os.path.join(d, 'io.bfq.weight')}: {_strerror(e)}") from None
    try:
        if weight:
            if bfq is not None:
                try:
                    os.write(bfq, str(weight).encode())
                except OSError as e:
                    raise PyruncError(f'failed to write "{weight}": write {d}/io.bfq.weight: {_strerror(e)}') from None
            else:
                write(d, "io.weight", str(convert_blkio_to_io_weight(weight)))
        if bfq is not None and _bfq_device_weight(bfq):
            for wd in wds:
                line = f"{_dev(wd)} {wd.get('weight') or 0}"
                try:
                    os.write(bfq, (line + "\n").encode())
                except OSError as e:
                    raise PyruncError(f'setting device weight "{line}": {_strerror(e)}') from None
        elif wds:
            from .. import log
            log.warn("blockIO.weightDevice needs the BFQ scheduler's per-device io.bfq.weight: ignored (as runc)")
    finally:
        if bfq is not None:
            os.close(bfq)
    for key, _, name in _THROTTLE:
        for td in bio.get(key) or []:
            write(d, "io.max", f"{_dev(td)} {name}={td.get('rate') or 0}")


def _bfq_device_weight(fd: int) -> bool:
    """Per-device BFQ weights (kernel >= 5.4): io.bfq.weight reads back more
    than a single number."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 32)
    except OSError:
        return False
    try:
        int(data.strip())
        return False
    except ValueError:
        return True


def _v2_cpu(d: str, cpu: dict) -> None:
    shares = cpu.get("shares") or 0
    quota = cpu.get("quota") or 0
    period = cpu.get("period") or 0
    burst = cpu.get("burst")
    idle = cpu.get("idle")
    weight = convert_cpu_shares_to_weight(shares)
    if not (weight or quota or period or idle is not None or burst is not None):
        return
    if idle is not None:
        write(d, "cpu.idle", str(idle))
    if weight:
        write(d, "cpu.weight", str(weight))
    retry_burst = ""
    if burst is not None:
        try:
            write(d, "cpu.max.burst", str(burst))
        except CgroupFileError as e:
            if e.errno != errno.EINVAL or not quota:
                raise
            retry_burst = str(burst)
    if quota or period:
        s = str(quota) if quota > 0 else "max"
        s += " " + str(period or 100000)
        write(d, "cpu.max", s)
        if retry_burst:
            write(d, "cpu.max.burst", retry_burst)


def _v2_unified(d: str, uni: dict) -> None:
    controllers = None
    for k, v in uni.items():
        try:
            lines = v.split("\n")
            for i, line in enumerate(lines):  # runc's WriteFileByLine
                part = line + ("\n" if i < len(lines) - 1 else "")
                if part:
                    _write_file(d, k, part)
        except OSError as e:
            if e.errno in (errno.EPERM, errno.ENOENT):
                c, dot, _ = k.partition(".")
                if not dot:
                    raise PyruncError(f'unified resource "{k}" must be in the form CONTROLLER.PARAMETER') from None
                if controllers is None:
                    controllers = _read_words(os.path.join(d, "cgroup.controllers"))
                if c not in controllers and c != "cgroup":
                    raise PyruncError(f'unified resource "{k}" can\'t be set: controller "{c}" not available') from None
            raise PyruncError(f'unable to set unified resource "{k}": failed to write "{v}": '
                              f"write {os.path.join(d, k)}: {_strerror(e)}") from None
