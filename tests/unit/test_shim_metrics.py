"""Task Stats' payload: the library's stats as containerd/cgroups' Metrics."""
from __future__ import annotations

from pyrunc.cgroups.stats import new_stats
from pyrunc.shim.metrics import Metrics, V2Metrics, metrics


def _stats() -> dict:
    st = new_stats()
    st["pids"] = {"current": 3, "limit": 64}
    st["cpu"].update(total=5_000_000, user=3_000_000, kernel=2_000_000, percpu=[4_000_000, 1_000_000],
                     periods=7, throttled_periods=2, throttled_time=900)
    st["memory"]["usage"] = {"usage": 1 << 20, "max_usage": 2 << 20, "failcnt": 1, "limit": 64 << 20}
    st["memory"]["raw"] = {"cache": 4096, "rss": 8192, "total_rss": 8192, "hierarchical_memory_limit": 64 << 20}
    return st


def test_v1_metrics():
    any_ = metrics(_stats(), {"memory": "/sys/fs/cgroup/memory/x", "pids": "/sys/fs/cgroup/pids/x"})
    assert any_.type_url == "io.containerd.cgroups.v1.Metrics"
    m = Metrics.decode(any_.value)
    assert (m.pids.current, m.pids.limit) == (3, 64)
    assert (m.cpu.usage.total, m.cpu.usage.user, m.cpu.usage.kernel) == (5_000_000, 3_000_000, 2_000_000)
    assert list(m.cpu.usage.per_cpu) == [4_000_000, 1_000_000]
    assert (m.cpu.throttling.periods, m.cpu.throttling.throttled_time) == (7, 900)
    assert (m.memory.usage.usage, m.memory.usage.max, m.memory.usage.limit) == (1 << 20, 2 << 20, 64 << 20)
    assert (m.memory.cache, m.memory.rss, m.memory.total_rss) == (4096, 8192, 8192)
    assert m.memory.hierarchical_memory_limit == 64 << 20


def test_v2_metrics():
    any_ = metrics(_v2_stats(), {"": "/sys/fs/cgroup/x"})
    assert any_.type_url == "io.containerd.cgroups.v2.Metrics"
    m = V2Metrics.decode(any_.value)
    assert (m.pids.current, m.cpu.usage_usec, m.cpu.user_usec, m.cpu.system_usec) == (3, 5000, 3000, 2000)
    assert (m.cpu.nr_periods, m.cpu.nr_throttled) == (7, 2)
    assert (m.memory.usage, m.memory.usage_limit, m.memory.max_usage) == (1 << 20, 64 << 20, 2 << 20)
    assert (m.memory.swap_usage, m.memory.anon) == (4096, 512)


def _v2_stats() -> dict:
    st = _stats()
    st["memory"]["raw"] = {"anon": 512, "file": 4096}
    # as the library reports v2 swap: memory + swap (runc's v1 view)
    st["memory"]["swap"] = {"usage": (1 << 20) + 4096, "max_usage": 0, "failcnt": 0, "limit": (1 << 64) - 1}
    return st
