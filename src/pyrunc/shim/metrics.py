"""Task Stats as containerd expects them: containerd/cgroups' Metrics
protobuf in an Any (io.containerd.cgroups.v1.Metrics on cgroup v1,
io.containerd.cgroups.v2.Metrics on v2), from the library's stats (runc's
types.Stats shape). v1 carries pids, cpu (usage, throttling) and memory
(usage/swap/kernel/kernel_tcp entries and the memory.stat counters), v2
pids, cpu and memory (usage, limits, swap, the memory.stat counters); the
rest (blkio/io, hugetlb, rdma, network, memory events) is not encoded.
"""
from __future__ import annotations

from pyrunc.shim.protobuf import Any, Field, Message


class PidsStat(Message):
    NAME = "io.containerd.cgroups.v1.PidsStat"
    FIELDS = (Field(1, "current", "uint64"), Field(2, "limit", "uint64"))


class CPUUsage(Message):
    NAME = "io.containerd.cgroups.v1.CPUUsage"
    FIELDS = (Field(1, "total", "uint64"), Field(2, "kernel", "uint64"), Field(3, "user", "uint64"),
              Field(4, "per_cpu", "uint64", repeated=True))


class Throttle(Message):
    NAME = "io.containerd.cgroups.v1.Throttle"
    FIELDS = (Field(1, "periods", "uint64"), Field(2, "throttled_periods", "uint64"),
              Field(3, "throttled_time", "uint64"))


class CPUStat(Message):
    NAME = "io.containerd.cgroups.v1.CPUStat"
    FIELDS = (Field(1, "usage", CPUUsage), Field(2, "throttling", Throttle))


class MemoryEntry(Message):
    NAME = "io.containerd.cgroups.v1.MemoryEntry"
    FIELDS = (Field(1, "limit", "uint64"), Field(2, "usage", "uint64"), Field(3, "max", "uint64"),
              Field(4, "failcnt", "uint64"))


# memory.stat keys in MemoryStat's field order (1..32)
_MEM_KEYS = ("cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback", "pgpgin", "pgpgout", "pgfault",
             "pgmajfault", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
             "hierarchical_memory_limit", "hierarchical_memsw_limit")
_MEM_NAMES = ("cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback", "pg_pg_in", "pg_pg_out", "pg_fault",
              "pg_maj_fault", "inactive_anon", "active_anon", "inactive_file", "active_file", "unevictable",
              "hierarchical_memory_limit", "hierarchical_swap_limit")


class MemoryStat(Message):
    NAME = "io.containerd.cgroups.v1.MemoryStat"
    FIELDS = (*(Field(i + 1, n, "uint64") for i, n in enumerate(_MEM_NAMES)),
              *(Field(i + 18, "total_" + n, "uint64") for i, n in enumerate(_MEM_NAMES[:15])),
              Field(33, "usage", MemoryEntry), Field(34, "swap", MemoryEntry), Field(35, "kernel", MemoryEntry),
              Field(36, "kernel_tcp", MemoryEntry))


class Metrics(Message):
    NAME = "io.containerd.cgroups.v1.Metrics"
    FIELDS = (Field(2, "pids", PidsStat), Field(3, "cpu", CPUStat), Field(4, "memory", MemoryStat))


class V2PidsStat(Message):
    NAME = "io.containerd.cgroups.v2.PidsStat"
    FIELDS = PidsStat.FIELDS


class V2CPUStat(Message):
    NAME = "io.containerd.cgroups.v2.CPUStat"
    FIELDS = (Field(1, "usage_usec", "uint64"), Field(2, "user_usec", "uint64"), Field(3, "system_usec", "uint64"),
              Field(4, "nr_periods", "uint64"), Field(5, "nr_throttled", "uint64"),
              Field(6, "throttled_usec", "uint64"))


# memory.stat keys of cgroup v2, in MemoryStat's field order (1..31)
_V2_MEM_KEYS = ("anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped", "file_dirty",
                "file_writeback", "anon_thp", "inactive_anon", "active_anon", "inactive_file", "active_file",
                "unevictable", "slab_reclaimable", "slab_unreclaimable", "pgfault", "pgmajfault",
                "workingset_refault", "workingset_activate", "workingset_nodereclaim", "pgrefill", "pgscan",
                "pgsteal", "pgactivate", "pgdeactivate", "pglazyfree", "pglazyfreed", "thp_fault_alloc",
                "thp_collapse_alloc")


class V2MemoryStat(Message):
    NAME = "io.containerd.cgroups.v2.MemoryStat"
    FIELDS = (*(Field(i + 1, n, "uint64") for i, n in enumerate(_V2_MEM_KEYS)),
              Field(32, "usage", "uint64"), Field(33, "usage_limit", "uint64"), Field(34, "swap_usage", "uint64"),
              Field(35, "swap_limit", "uint64"), Field(36, "max_usage", "uint64"))


class V2Metrics(Message):
    NAME = "io.containerd.cgroups.v2.Metrics"
    FIELDS = (Field(1, "pids", V2PidsStat), Field(2, "cpu", V2CPUStat), Field(4, "memory", V2MemoryStat))


_MAX_UINT64 = (1 << 64) - 1


def _v2_memory(mem: dict) -> V2MemoryStat:
    """The library reports v2 swap as memory+swap (runc's v1 view): undone here."""
    raw = mem.get("raw") or {}
    usage = mem.get("usage") or {}
    swap = mem.get("swap") or {}
    ms = V2MemoryStat(usage=usage.get("usage", 0), usage_limit=usage.get("limit", 0),
                      max_usage=usage.get("max_usage", 0),
                      swap_usage=max(0, swap.get("usage", 0) - usage.get("usage", 0)))
    limit = swap.get("limit", 0)
    ms.swap_limit = limit if limit == _MAX_UINT64 else (limit - usage.get("limit", 0)) & _MAX_UINT64
    for key in _V2_MEM_KEYS:
        setattr(ms, key, int(raw.get(key, 0) or 0))
    return ms


def _entry(d: dict | None) -> MemoryEntry:
    d = d or {}
    return MemoryEntry(limit=d.get("limit", 0), usage=d.get("usage", 0), max=d.get("max_usage", 0),
                       failcnt=d.get("failcnt", 0))


def metrics(stats: dict, paths: dict) -> Any:
    """The library's stats -> the Any containerd's `ctr task metrics` reads."""
    cpu = stats.get("cpu") or {}
    pids = stats.get("pids") or {}
    from pyrunc.cgroups.resources import is_v2
    if is_v2(paths):  # cgroup v2: one unified path
        return Any.pack(V2Metrics(
            pids=V2PidsStat(current=pids.get("current", 0), limit=pids.get("limit", 0)),
            cpu=V2CPUStat(usage_usec=cpu.get("total", 0) // 1000, user_usec=cpu.get("user", 0) // 1000,
                          system_usec=cpu.get("kernel", 0) // 1000, nr_periods=cpu.get("periods", 0),
                          nr_throttled=cpu.get("throttled_periods", 0),
                          throttled_usec=cpu.get("throttled_time", 0) // 1000),
            memory=_v2_memory(stats.get("memory") or {})))
    mem = stats.get("memory") or {}
    raw = mem.get("raw") or {}
    ms = MemoryStat(usage=_entry(mem.get("usage")), swap=_entry(mem.get("swap")), kernel=_entry(mem.get("kernel")),
                    kernel_tcp=_entry(mem.get("kernel_tcp")))
    for key, name in zip(_MEM_KEYS, _MEM_NAMES):
        setattr(ms, name, int(raw.get(key, 0) or 0))
    for key, name in zip(_MEM_KEYS[:15], _MEM_NAMES[:15]):
        setattr(ms, "total_" + name, int(raw.get("total_" + key, 0) or 0))
    return Any.pack(Metrics(
        pids=PidsStat(current=pids.get("current", 0), limit=pids.get("limit", 0)),
        cpu=CPUStat(usage=CPUUsage(total=cpu.get("total", 0), kernel=cpu.get("kernel", 0), user=cpu.get("user", 0),
                                   per_cpu=list(cpu.get("percpu") or [])),
                    throttling=Throttle(periods=cpu.get("periods", 0),
                                        throttled_periods=cpu.get("throttled_periods", 0),
                                        throttled_time=cpu.get("throttled_time", 0))),
        memory=ms))
