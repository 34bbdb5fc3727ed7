"""Container statistics from the cgroup files, shaped as runc's `events`
prints them (runc types/events.go, filled as libcontainer's fs and fs2
managers fill cgroups.Stats, converted as events.go convertLibcontainerStats).

    stats(paths) -> dict   # the "data" of a {"type":"stats"} event

Field names, order and omitempty/omitzero rules are runc's: Go's encoder
writes struct fields in declaration order, map keys sorted, omits an
`omitempty` field when it is 0, "", nil or an empty slice/map, and an
`omitzero` struct when every field of it is zero (a nil slice is zero, an
empty non-nil one is not). None stands for Go's nil here.
"""
from __future__ import annotations

import os

from ..errors import PyruncError
from .resources import MAX_UINT64, controller_dir, is_v2

MAX_INT64 = (1 << 63) - 1


class StatsError(PyruncError):
    pass


# -- reading -------------------------------------------------------------------------

def _read(d: str, name: str) -> str:
    with open(os.path.join(d, name)) as f:
        return f.read()


def _parse_uint(s: str, where: str) -> int:
    """fscommon.ParseUint: negative values (kernel bugs) read as 0."""
    try:
        v = int(s, 10)
    except ValueError:
        raise StatsError(f"unable to parse {where}: {s!r}") from None
    if v < 0:
        return 0
    if v > MAX_UINT64:
        raise StatsError(f"unable to parse {where}: {s!r}: value out of range")
    return v


def _uint(d: str, name: str) -> int:
    """GetCgroupParamUint: "max" is MaxUint64."""
    s = _read(d, name).strip()
    if s == "max":
        return MAX_UINT64
    return _parse_uint(s, os.path.join(d, name))


def _int(d: str, name: str) -> int:
    s = _read(d, name).strip()
    if s == "max":
        return MAX_INT64
    try:
        return int(s)
    except ValueError:
        raise StatsError(f"unable to parse {os.path.join(d, name)}: {s!r}") from None


def _kv(line: str, where: str) -> tuple[str, int]:
    key, sep, val = line.partition(" ")
    if not sep or not key or not val:
        raise StatsError(f'{where}: line "{line}" is not in "key value" format')
    return key, _parse_uint(val, where)


def _value_by_key(d: str, name: str, key: str) -> int:
    for line in _read(d, name).split("\n"):
        if line.startswith(key + " "):
            return _parse_uint(line[len(key) + 1:], os.path.join(d, name))
    return 0


def hugepage_sizes() -> list[str]:
    """cgroups.HugePageSizes: "2MB", "1GB" from /sys/kernel/mm/hugepages."""
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except OSError:
        return []
    out = []
    for n in names:
        if not n.startswith("hugepages-") or not n.endswith("kB"):
            continue
        try:
            size = int(n[10:-2])
        except ValueError:
            continue
        out.append(f"{size >> 20}GB" if size >= 1 << 20 else f"{size >> 10}MB" if size >= 1 << 10 else f"{size}KB")
    return out


# -- the internal cgroups.Stats -----------------------------------------------------------

def _mem_data() -> dict:
    return {"usage": 0, "max_usage": 0, "failcnt": 0, "limit": 0}


def new_stats() -> dict:
    return {
        "cpu": {"total": 0, "percpu": None, "percpu_kernel": None, "percpu_user": None,
                "kernel": 0, "user": 0, "periods": 0, "throttled_periods": 0, "throttled_time": 0,
                "psi": None},
        "cpuset": {"cpus": None, "cpu_exclusive": 0, "mems": None, "mem_hardwall": 0, "mem_exclusive": 0,
                   "memory_migrate": 0, "memory_spread_page": 0, "memory_spread_slab": 0,
                   "memory_pressure": 0, "sched_load_balance": 0, "sched_relax_domain_level": 0},
        "memory": {"cache": 0, "usage": _mem_data(), "swap": _mem_data(), "kernel": _mem_data(),
                   "kernel_tcp": _mem_data(), "raw": {}, "psi": None},
        "pids": {"current": 0, "limit": 0},
        "blkio": {k: None for k in _BLKIO_KEYS} | {"psi": None},
        "hugetlb": {},
    }


_BLKIO_KEYS = ("ioServiceBytesRecursive", "ioServicedRecursive", "ioQueueRecursive", "ioServiceTimeRecursive",
               "ioWaitTimeRecursive", "ioMergedRecursive", "ioTimeRecursive", "sectorsRecursive")


# -- cgroup v1 (fs driver) --------------------------------------------------------------------

def _v1_cpuset(d: str, st: dict) -> None:
    cs = st["cpuset"]

    def opt(fn, name):
        try:
            return fn(d, name)
        except FileNotFoundError:
            return None

    for key in ("cpus", "mems"):
        try:
            text = _read(d, f"cpuset.{key}").strip()
        except FileNotFoundError:
            continue
        if not text:
            raise StatsError(f"unable to parse {d}/cpuset.{key}: empty file")
        cs[key] = _cpu_list(text, f"{d}/cpuset.{key}")
    for key in ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate", "memory_spread_page",
                "memory_spread_slab", "memory_pressure", "sched_load_balance"):
        v = opt(_uint, f"cpuset.{key}")
        if v is not None:
            cs[key] = v
    v = opt(_int, "cpuset.sched_relax_domain_level")
    if v is not None:
        cs["sched_relax_domain_level"] = v


def _cpu_list(text: str, where: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, dash, b = part.partition("-")
        try:
            lo = int(a)
            hi = int(b) if dash else lo
        except ValueError:
            raise StatsError(f"unable to parse {where}: {text!r}") from None
        if lo > hi:
            raise StatsError(f"unable to parse {where}: invalid values, from > to")
        out.extend(range(lo, hi + 1))
    return out


def _v1_mem_data(d: str, name: str) -> dict:
    mod = "memory." + name if name else "memory"
    m = _mem_data()
    try:
        m["usage"] = _uint(d, mod + ".usage_in_bytes")
    except FileNotFoundError:
        if name:
            return m  # swap and kmem accounting are optional
        raise
    m["max_usage"] = _uint(d, mod + ".max_usage_in_bytes")
    m["failcnt"] = _uint(d, mod + ".failcnt")
    try:
        m["limit"] = _uint(d, mod + ".limit_in_bytes")
    except FileNotFoundError:
        if name != "kmem":
            raise
    return m


def _v1_memory(d: str, st: dict) -> None:
    try:
        text = _read(d, "memory.stat")
    except FileNotFoundError:
        return
    mem = st["memory"]
    for line in text.splitlines():
        if line:
            k, v = _kv(line, f"{d}/memory.stat")
            mem["raw"][k] = v
    mem["cache"] = mem["raw"].get("cache", 0)
    mem["usage"] = _v1_mem_data(d, "")
    mem["swap"] = _v1_mem_data(d, "memsw")
    mem["kernel"] = _v1_mem_data(d, "kmem")
    mem["kernel_tcp"] = _v1_mem_data(d, "kmem.tcp")
    _uint(d, "memory.use_hierarchy")


def _v1_cpu(d: str, st: dict) -> None:
    try:
        text = _read(d, "cpu.stat")
    except FileNotFoundError:
        return
    cpu = st["cpu"]
    for line in text.splitlines():
        if not line:
            continue
        k, v = _kv(line, f"{d}/cpu.stat")
        if k == "nr_periods":
            cpu["periods"] = v
        elif k == "nr_throttled":
            cpu["throttled_periods"] = v
        elif k == "throttled_time":
            cpu["throttled_time"] = v


def _v1_cpuacct(d: str, st: dict) -> None:
    if not os.path.exists(d):
        return
    fields = _read(d, "cpuacct.stat").split()
    if len(fields) < 4 or fields[0] != "user" or fields[2] != "system":
        raise StatsError(f"{d}/cpuacct.stat: malformed line")
    # ticks of USER_HZ (100 on Linux) to nanoseconds
    user = _parse_uint(fields[1], f"{d}/cpuacct.stat") * 1_000_000_000 // 100
    kernel = _parse_uint(fields[3], f"{d}/cpuacct.stat") * 1_000_000_000 // 100
    total = _uint(d, "cpuacct.usage")
    percpu = [_parse_uint(v, f"{d}/cpuacct.usage_percpu") for v in _read(d, "cpuacct.usage_percpu").split()]
    pk: list[int] = []
    pu: list[int] = []
    try:
        lines = _read(d, "cpuacct.usage_all").splitlines()
    except FileNotFoundError:
        lines = None
    if lines is not None:
        if not lines or not lines[0].startswith("cpu user system"):
            raise StatsError(f"{d}/cpuacct.usage_all: malformed line")
        for line in lines[1:]:
            f = line.split(" ", 3)
            if len(f) < 3:
                continue
            pu.append(_parse_uint(f[1], f"{d}/cpuacct.usage_all"))
            pk.append(_parse_uint(f[2], f"{d}/cpuacct.usage_all"))
    cpu = st["cpu"]
    cpu.update(total=total, percpu=percpu, percpu_kernel=pk, percpu_user=pu, user=user, kernel=kernel)


def _v1_pids(d: str, st: dict) -> None:
    if not os.path.exists(d):
        return
    cur = _uint(d, "pids.current")
    mx = _uint(d, "pids.max")
    st["pids"] = {"current": cur, "limit": 0 if mx == MAX_UINT64 else mx}


def _blkio_stat(d: str, name: str) -> list | None:
    try:
        text = _read(d, name)
    except FileNotFoundError:
        return None
    out: list = []
    for line in text.splitlines():
        fields = line.replace(":", " ").split()
        if len(fields) < 3:
            if len(fields) == 2 and fields[0] == "Total":
                continue
            raise StatsError(f"{d}/{name}: malformed line {line!r}")
        major = _parse_uint(fields[0], f"{d}/{name}")
        minor = _parse_uint(fields[1], f"{d}/{name}")
        op, vf = ("", 2) if len(fields) != 4 else (fields[2], 3)
        out.append({"major": major, "minor": minor, "op": op, "value": _parse_uint(fields[vf], f"{d}/{name}")})
    return out or None


_BLKIO_GROUPS = (
    (("blkio.bfq.sectors_recursive", "sectorsRecursive"),
     ("blkio.bfq.io_service_time_recursive", "ioServiceTimeRecursive"),
     ("blkio.bfq.io_wait_time_recursive", "ioWaitTimeRecursive"),
     ("blkio.bfq.io_merged_recursive", "ioMergedRecursive"),
     ("blkio.bfq.io_queued_recursive", "ioQueueRecursive"),
     ("blkio.bfq.time_recursive", "ioTimeRecursive"),
     ("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive")),
    (("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive")),
    (("blkio.sectors_recursive", "sectorsRecursive"),
     ("blkio.io_service_time_recursive", "ioServiceTimeRecursive"),
     ("blkio.io_wait_time_recursive", "ioWaitTimeRecursive"),
     ("blkio.io_merged_recursive", "ioMergedRecursive"),
     ("blkio.io_queued_recursive", "ioQueueRecursive"),
     ("blkio.time_recursive", "ioTimeRecursive"),
     ("blkio.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.io_service_bytes_recursive", "ioServiceBytesRecursive")),
    (("blkio.throttle.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.throttle.io_service_bytes_recursive", "ioServiceBytesRecursive")),
    (("blkio.throttle.io_serviced", "ioServicedRecursive"),
     ("blkio.throttle.io_service_bytes", "ioServiceBytesRecursive")),
)


def _v1_blkio(d: str, st: dict) -> None:
    """The first group of files whose first file has entries wins (runc's
    order: BFQ debug, BFQ, CFQ, throttle recursive, throttle)."""
    b = st["blkio"]
    for group in _BLKIO_GROUPS:
        for i, (name, key) in enumerate(group):
            entries = _blkio_stat(d, name)
            if entries is None:
                if i == 0:
                    break
                return
            b[key] = entries
            if i == len(group) - 1:
                return


def _v1_hugetlb(d: str, st: dict) -> None:
    if not os.path.exists(d):
        return
    rsvd = ".rsvd"
    for ps in hugepage_sizes():
        while True:
            prefix = f"hugetlb.{ps}{rsvd}"
            try:
                usage = _uint(d, prefix + ".usage_in_bytes")
                break
            except FileNotFoundError:
                if not rsvd:
                    raise
                rsvd = ""
        st["hugetlb"][ps] = {"usage": usage, "max": _uint(d, prefix + ".max_usage_in_bytes"),
                             "failcnt": _uint(d, prefix + ".failcnt")}


def _stats_v1(paths: dict[str, str]) -> dict:
    st = new_stats()
    for ctrl, fn in (("cpuset", _v1_cpuset), ("memory", _v1_memory), ("cpu", _v1_cpu),
                     ("cpuacct", _v1_cpuacct), ("pids", _v1_pids), ("blkio", _v1_blkio),
                     ("hugetlb", _v1_hugetlb)):
        d = controller_dir(paths, ctrl)
        if not d:
            continue
        try:
            fn(d, st)
        except OSError as e:
            raise StatsError(f"{e.filename or d}: {(e.strerror or '').lower() or e}") from None
    return st


# -- cgroup v2 (fs2 driver) --------------------------------------------------------------------

def _psi(d: str, name: str) -> dict | None:
    try:
        text = _read(d, name)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == 95:  # ENOTSUP: psi=0 on the kernel command line
            return None
        raise
    out: dict = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] not in ("some", "full"):
            continue
        data = {"avg10": 0.0, "avg60": 0.0, "avg300": 0.0, "total": 0}
        for f in parts[1:]:
            k, eq, v = f.partition("=")
            if not eq:
                raise StatsError(f"{d}/{name}: invalid psi data: {f!r}")
            try:
                if k == "total":
                    data["total"] = int(v)
                elif k in data:
                    data[k] = float(v)
            except ValueError:
                raise StatsError(f"{d}/{name}: invalid {k} PSI value: {v!r}") from None
        out[parts[0]] = data
    return out


def _v2_mem_data(d: str, name: str) -> dict:
    mod = "memory." + name if name else "memory"
    m = _mem_data()
    try:
        m["usage"] = _uint(d, mod + ".current")
    except FileNotFoundError:
        if name:
            return m
        raise
    m["limit"] = _uint(d, mod + ".max")
    try:
        m["max_usage"] = _uint(d, mod + ".peak")
    except FileNotFoundError:
        pass
    return m


def _stats_v2(d: str) -> dict:
    st = new_stats()
    errs: list[str] = []

    def attempt(fn, ignore_enoent: bool) -> None:
        try:
            fn()
        except FileNotFoundError as e:
            if not ignore_enoent:
                errs.append(f"open {e.filename}: no such file or directory")
        except OSError as e:
            errs.append(f"{e.filename or d}: {(e.strerror or '').lower()}")
        except StatsError as e:
            errs.append(str(e))

    def pids() -> None:
        try:
            cur = _uint(d, "pids.current")
        except FileNotFoundError:
            try:
                text = _read(d, "cgroup.procs")
            except OSError as e:
                if e.errno != 95:
                    raise
                text = _read(d, "cgroup.threads")
            st["pids"] = {"current": text.count("\n"), "limit": 0}
            return
        mx = _uint(d, "pids.max")
        st["pids"] = {"current": cur, "limit": 0 if mx == MAX_UINT64 else mx}

    def memory() -> None:
        mem = st["memory"]
        for line in _read(d, "memory.stat").splitlines():
            if line:
                k, v = _kv(line, f"{d}/memory.stat")
                mem["raw"][k] = v
        mem["cache"] = mem["raw"].get("file", 0)
        mem["usage"] = _v2_mem_data(d, "")
        swap = _v2_mem_data(d, "swap")
        # v1 reports memory+swap: add memory for compatibility, as runc does
        swap["usage"] += mem["usage"]["usage"]
        if swap["limit"] != MAX_UINT64:
            swap["limit"] = (swap["limit"] + mem["usage"]["limit"]) & MAX_UINT64  # uint64, as Go
        swap["max_usage"] = 0
        mem["swap"] = swap

    def io() -> None:
        b = st["blkio"]
        for line in _read(d, "io.stat").splitlines():
            parts = line.split()
            if len(parts) < 2:
                continue
            mm = parts[0].split(":")
            if len(mm) != 2:
                continue
            major = _parse_uint(mm[0], f"{d}/io.stat")
            minor = _parse_uint(mm[1], f"{d}/io.stat")
            for item in parts[1:]:
                k, eq, v = item.partition("=")
                if not eq:
                    continue
                where = {"rbytes": ("Read", "ioServiceBytesRecursive"), "wbytes": ("Write", "ioServiceBytesRecursive"),
                         "rios": ("Read", "ioServicedRecursive"), "wios": ("Write", "ioServicedRecursive")}.get(k)
                if where is None:
                    continue
                op, key = where
                if b[key] is None:
                    b[key] = []
                b[key].append({"major": major, "minor": minor, "op": op, "value": _parse_uint(v, f"{d}/io.stat")})

    def cpu() -> None:
        c = st["cpu"]
        for line in _read(d, "cpu.stat").splitlines():
            if not line:
                continue
            k, v = _kv(line, f"{d}/cpu.stat")
            if k == "usage_usec":
                c["total"] = v * 1000
            elif k == "user_usec":
                c["user"] = v * 1000
            elif k == "system_usec":
                c["kernel"] = v * 1000
            elif k == "nr_periods":
                c["periods"] = v
            elif k == "nr_throttled":
                c["throttled_periods"] = v
            elif k == "throttled_usec":
                c["throttled_time"] = v * 1000

    def hugetlb() -> None:
        rsvd = ".rsvd"
        for ps in hugepage_sizes():
            prefix = f"hugetlb.{ps}"
            while True:
                try:
                    usage = _uint(d, prefix + rsvd + ".current")
                    break
                except FileNotFoundError:
                    if not rsvd:
                        raise
                    rsvd = ""
            st["hugetlb"][ps] = {"usage": usage, "max": 0,
                                 "failcnt": _value_by_key(d, prefix + ".events", "max")}

    def psi(section: str, name: str) -> None:
        if section == "blkio":
            st["blkio"]["psi"] = _psi(d, name)
        else:
            st[section]["psi"] = _psi(d, name)

    attempt(pids, False)
    attempt(memory, True)
    attempt(lambda: psi("memory", "memory.pressure"), False)
    attempt(io, True)
    attempt(lambda: psi("blkio", "io.pressure"), False)
    attempt(cpu, True)
    attempt(lambda: psi("cpu", "cpu.pressure"), False)
    attempt(hugetlb, True)
    if errs and os.geteuid() == 0:
        raise StatsError(f"error while statting cgroup v2: [{' '.join(errs)}]")
    return st


# -- runc's types.Stats --------------------------------------------------------------------

class _S:
    """A Go struct: (json name, value, mode) with mode "", "omitempty" or "omitzero"."""
    __slots__ = ("fields",)

    def __init__(self, *fields: tuple) -> None:
        self.fields = fields


def _zero(v: object) -> bool:
    if isinstance(v, _S):
        return all(_zero(f[1]) for f in v.fields)
    return v is None or v == 0 or v == "" or v is False


def _empty(v: object) -> bool:
    if isinstance(v, (list, dict)):
        return not v
    return v is None or v == 0 or v == "" or v is False


def _plain(v: object) -> object:
    if isinstance(v, _S):
        out = {}
        for name, val, mode in v.fields:
            if mode == "omitempty" and _empty(val):
                continue
            if mode == "omitzero" and _zero(val):
                continue
            out[name] = _plain(val)
        return out
    if isinstance(v, dict):
        return {k: _plain(v[k]) for k in sorted(v)}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return int(v)  # Go writes 3 where Python writes 3.0
    return v


def _psi_struct(p: dict | None) -> _S | None:
    if p is None:
        return None

    def data(x: dict | None) -> _S:
        x = x or {"avg10": 0.0, "avg60": 0.0, "avg300": 0.0, "total": 0}
        return _S(("avg10", x["avg10"], ""), ("avg60", x["avg60"], ""), ("avg300", x["avg300"], ""),
                  ("total", x["total"], ""))
    return _S(("some", data(p.get("some")), "omitzero"), ("full", data(p.get("full")), "omitzero"))


def _mem_entry(m: dict) -> _S:
    return _S(("limit", m["limit"], ""), ("usage", m["usage"], "omitempty"),
              ("max", m["max_usage"], "omitempty"), ("failcnt", m["failcnt"], ""))


def _blkio_list(entries: list | None) -> list | None:
    if entries is None:
        return None
    return [_S(("major", e["major"], "omitempty"), ("minor", e["minor"], "omitempty"),
               ("op", e["op"], "omitempty"), ("value", e["value"], "omitempty")) for e in entries]


def to_runc_types(st: dict) -> dict:
    """cgroups.Stats -> types.Stats (events.go convertLibcontainerStats)."""
    c, cs, m, b = st["cpu"], st["cpuset"], st["memory"], st["blkio"]
    cpu = _S(
        ("usage", _S(("total", c["total"], "omitempty"), ("percpu", c["percpu"], "omitempty"),
                     ("percpu_kernel", c["percpu_kernel"], "omitempty"),
                     ("percpu_user", c["percpu_user"], "omitempty"),
                     ("kernel", c["kernel"], ""), ("user", c["user"], "")), "omitzero"),
        ("throttling", _S(("periods", c["periods"], "omitempty"),
                          ("throttledPeriods", c["throttled_periods"], "omitempty"),
                          ("throttledTime", c["throttled_time"], "omitempty")), "omitzero"),
        ("psi", _psi_struct(c["psi"]), "omitempty"))
    cpuset = _S(("cpus", cs["cpus"], "omitempty"), ("cpu_exclusive", cs["cpu_exclusive"], ""),
                ("mems", cs["mems"], "omitempty"), ("mem_hardwall", cs["mem_hardwall"], ""),
                ("mem_exclusive", cs["mem_exclusive"], ""), ("memory_migrate", cs["memory_migrate"], ""),
                ("memory_spread_page", cs["memory_spread_page"], ""),
                ("memory_spread_slab", cs["memory_spread_slab"], ""),
                ("memory_pressure", cs["memory_pressure"], ""),
                ("sched_load_balance", cs["sched_load_balance"], ""),
                ("sched_relax_domain_level", cs["sched_relax_domain_level"], ""))
    memory = _S(("cache", m["cache"], "omitempty"), ("usage", _mem_entry(m["usage"]), "omitzero"),
                ("swap", _mem_entry(m["swap"]), "omitzero"), ("kernel", _mem_entry(m["kernel"]), "omitzero"),
                ("kernelTCP", _mem_entry(m["kernel_tcp"]), "omitzero"), ("raw", m["raw"], "omitempty"),
                ("psi", _psi_struct(m["psi"]), "omitempty"))
    pids = _S(("current", st["pids"]["current"], "omitempty"), ("limit", st["pids"]["limit"], "omitempty"))
    blkio = _S(*[(k, _blkio_list(b[k]), "omitempty") for k in _BLKIO_KEYS],
               ("psi", _psi_struct(b["psi"]), "omitempty"))
    hugetlb = {k: _S(("usage", v["usage"], "omitempty"), ("max", v["max"], "omitempty"),
                     ("failcnt", v["failcnt"], "")) for k, v in st["hugetlb"].items()}
    out = _plain(_S(("cpu", cpu, ""), ("cpuset", cpuset, ""), ("memory", memory, ""), ("pids", pids, ""),
                    ("blkio", blkio, ""), ("hugetlb", hugetlb, ""), ("intel_rdt", _S(), ""),
                    ("network_interfaces", None, "")))
    assert isinstance(out, dict)  # an _S always becomes a dict
    return out


def collect(paths: dict[str, str]) -> dict:
    """The internal cgroups.Stats of a container's cgroup."""
    if is_v2(paths):
        return _stats_v2(paths[""])
    return _stats_v1(paths)


def stats(paths: dict[str, str]) -> dict:
    """runc's types.Stats for the container's cgroup, ready for JSON."""
    return to_runc_types(collect(paths))
